import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Mails per address and hour are counted at every new mail (NOTIFY_MAX_PER_ADDRESS_PER_HOUR). */
export class RecipientIndex1765800000000 implements MigrationInterface {
  name = 'RecipientIndex1765800000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE INDEX deliveries_recipient_idx ON deliveries (recipient_hash, created_at)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX deliveries_recipient_idx`);
  }
}
