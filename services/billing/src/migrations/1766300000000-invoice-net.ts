import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * An invoice's net as Stripe states it (`total_excluding_tax`: after
 * discounts, before tax), for the books: the subtotal is before discounts.
 * Empty for invoices mirrored before; their net is total − tax.
 */
export class InvoiceNet1766300000000 implements MigrationInterface {
  name = 'InvoiceNet1766300000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE invoices ADD COLUMN net bigint`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE invoices DROP COLUMN net`);
  }
}
