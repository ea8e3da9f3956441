import { describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { currentPeriod } from '../src/common/workspace-key.js';
import { InvoicesService } from '../src/invoices/invoices.service.js';
import { billingWorld } from './billing-world.js';

/**
 * Invoices as Stripe sends them since API version 2025-03-31.basil (the
 * SDK's): taxes in `total_taxes`, the net in `total_excluding_tax`, no `tax`.
 * Net + tax = gross in the list and the bookkeeping export, also on a credit.
 */
describe('invoice amounts', () => {
  const world = billingWorld();

  it('takes the tax from total_taxes and the net from total_excluding_tax, negative on a credit, the legacy tax only without total_taxes', async () => {
    const { actor, customer } = await world.privateCustomer();
    const tag = randomUUID().slice(0, 8).toUpperCase();
    const created = Math.floor(Date.now() / 1000);
    const paid = (invoice: Record<string, unknown>) =>
      world.sendEvent('invoice.paid', { object: 'invoice', customer, currency: 'eur', status: 'paid', created, metadata: {}, ...invoice }, created);

    // 1500, a 10 % coupon (150), 19 % VAT on 1350 (257): 1607.
    await paid({
      id: `in_${tag}_discount`, number: `${tag}-0001`, subtotal: 1500, subtotal_excluding_tax: 1500, total_excluding_tax: 1350, total: 1607, amount_paid: 1607,
      total_discount_amounts: [{ amount: 150, discount: 'di_1' }], total_taxes: [{ amount: 257, tax_behavior: 'exclusive', taxable_amount: 1350, type: 'tax_rate_details' }],
    });
    // A credit (a downgrade prorated back): everything negative.
    await paid({
      id: `in_${tag}_credit`, number: `${tag}-0002`, subtotal: -500, subtotal_excluding_tax: -500, total_excluding_tax: -500, total: -595, amount_paid: 0,
      total_taxes: [{ amount: -95, tax_behavior: 'exclusive', taxable_amount: -500, type: 'tax_rate_details' }],
    });
    // An event of an API version before basil.
    await paid({ id: `in_${tag}_legacy`, number: `${tag}-0003`, subtotal: 1000, tax: 190, total: 1190, amount_paid: 1190 });

    const { data } = await world.billing.app.get(InvoicesService).list(actor, 'private', 10);
    const amounts = Object.fromEntries(data.map((i) => [i.number, { subtotal: i.subtotal, tax: i.tax, total: i.total }]));
    expect(amounts).toEqual({
      [`${tag}-0001`]: { subtotal: 1500, tax: 257, total: 1607 },
      [`${tag}-0002`]: { subtotal: -500, tax: -95, total: -595 },
      [`${tag}-0003`]: { subtotal: 1000, tax: 190, total: 1190 },
    });
    const csv = await world.billing.app.get(InvoicesService).exportCsv(currentPeriod());
    const rows = csv.split('\n').filter((line) => line.startsWith(tag)).map((line) => line.split(';').slice(2, 5));
    expect(rows).toEqual([
      ['13.50', '2.57', '16.07'],
      ['-5.00', '-0.95', '-5.95'],
      ['10.00', '1.90', '11.90'],
    ]);

    // Taxes that add up to more than an amount can be are a bad event (400), not a 500.
    await expect(paid({ id: `in_${tag}_huge`, subtotal: 1, total: 1, total_taxes: [{ amount: Number.MAX_SAFE_INTEGER }, { amount: Number.MAX_SAFE_INTEGER }] })).rejects.toMatchObject({ status: 400 });
  });
});
