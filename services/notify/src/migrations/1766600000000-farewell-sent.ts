import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * When an erased subject's last mail (account-erased) went: a retry of the
 * erasure step sends it once only, also after Brevo forgot its idempotency key.
 */
export class FarewellSent1766600000000 implements MigrationInterface {
  name = 'FarewellSent1766600000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE erased_subjects ADD COLUMN farewell_sent_at timestamptz`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE erased_subjects DROP COLUMN farewell_sent_at`);
  }
}
