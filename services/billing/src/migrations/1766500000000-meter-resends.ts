import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * How often Stripe dropped a usage entry after accepting it (its meter error
 * reports): each re-send goes under an identifier of its own, since Stripe
 * takes one it has seen (24 hours) as already counted.
 */
export class MeterResends1766500000000 implements MigrationInterface {
  name = 'MeterResends1766500000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE ledger ADD COLUMN meter_resends int NOT NULL DEFAULT 0`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE ledger DROP COLUMN meter_resends`);
  }
}
