import type { MigrationInterface, QueryRunner } from 'typeorm';

/** A usage entry Stripe refuses for good (its customer deleted, say) ends as `refused` with Stripe's reason, instead of retrying hourly forever. */
export class MeterRefused1765600000000 implements MigrationInterface {
  name = 'MeterRefused1765600000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE ledger DROP CONSTRAINT ledger_meter_status_check`);
    await q.query(`ALTER TABLE ledger ADD CONSTRAINT ledger_meter_status_check CHECK (meter_status IN ('pending', 'reported', 'not_metered', 'refused'))`);
    await q.query(`ALTER TABLE ledger ADD COLUMN meter_error text`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`UPDATE ledger SET meter_status = 'pending' WHERE meter_status = 'refused'`);
    await q.query(`ALTER TABLE ledger DROP COLUMN meter_error`);
    await q.query(`ALTER TABLE ledger DROP CONSTRAINT ledger_meter_status_check`);
    await q.query(`ALTER TABLE ledger ADD CONSTRAINT ledger_meter_status_check CHECK (meter_status IN ('pending', 'reported', 'not_metered'))`);
  }
}
