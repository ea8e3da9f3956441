import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * When Stripe finalised an invoice (its number and date for the books): the bookkeeping export counts it in that
 * month, not in the one its draft was made in (a renewal drafted on a month's last evening is finalised after
 * midnight). Invoices mirrored before keep their draft's time.
 */
export class InvoiceFinalized1767400000000 implements MigrationInterface {
  name = 'InvoiceFinalized1767400000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE invoices ADD COLUMN finalized_at timestamptz`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE invoices DROP COLUMN finalized_at`);
  }
}
