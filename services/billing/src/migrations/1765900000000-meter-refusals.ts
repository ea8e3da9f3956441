import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Stripe's refusals of a usage entry counted apart from failed attempts: only refusals give it up (5xx and 429 pass). */
export class MeterRefusals1765900000000 implements MigrationInterface {
  name = 'MeterRefusals1765900000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE ledger ADD COLUMN meter_refusals int NOT NULL DEFAULT 0`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE ledger DROP COLUMN meter_refusals`);
  }
}
