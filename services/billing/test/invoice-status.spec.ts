import { describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { currentPeriod } from '../src/common/workspace-key.js';
import { InvoicesService } from '../src/invoices/invoices.service.js';
import { BillingPrivacyService } from '../src/privacy/billing-privacy.service.js';
import { billingWorld } from './billing-world.js';

/** The invoice mirror follows Stripe's status, so the bookkeeping export counts no voided invoice as revenue. */
describe('invoices that Stripe voids or marks uncollectible', () => {
  const world = billingWorld();

  it.each([
    ['invoice.voided', 'void'],
    ['invoice.marked_uncollectible', 'uncollectible'],
    ['invoice.updated', 'void'],
  ])('mirrors the status of %s, and a voided invoice leaves the bookkeeping export', async (type, status) => {
    const { actor, customer } = await world.privateCustomer();
    const tag = randomUUID().slice(0, 8).toUpperCase();
    const created = Math.floor(Date.now() / 1000);
    const invoice = { id: `in_${tag}`, object: 'invoice', number: `${tag}-0001`, customer, currency: 'eur', created, metadata: {}, subtotal: 1500, total_excluding_tax: 1500, total: 1785, amount_paid: 0, total_taxes: [{ amount: 285 }] };
    const send = world.sendEvent;
    await send('invoice.finalized', { ...invoice, status: 'open' }, created);
    await send(type, { ...invoice, status }, created + 5);
    const csv = await world.billing.app.get(InvoicesService).exportCsv(currentPeriod());
    expect(csv.split('\n').some((l) => l.startsWith(`${tag}-0001;`))).toBe(status !== 'void');
    const { data } = await world.billing.app.get(InvoicesService).list(actor, 'private', 10);
    expect(data.map((i) => i.status)).toEqual([status]);
  });

  it('follows Stripe for an invoice kept restricted after its customer was erased: voided afterwards, it leaves the export, naming nobody still', async () => {
    const { actor, customer } = await world.privateCustomer();
    const tag = randomUUID().slice(0, 8).toUpperCase();
    const created = Math.floor(Date.now() / 1000);
    const invoice = { id: `in_${tag}`, object: 'invoice', number: `${tag}-0001`, customer, currency: 'eur', created, metadata: {}, subtotal: 1500, total_excluding_tax: 1500, total: 1785, amount_paid: 0, total_taxes: [{ amount: 285 }], hosted_invoice_url: 'https://invoice.stripe.com/i/x' };
    const send = world.sendEvent;
    await send('invoice.finalized', { ...invoice, status: 'open' }, created);
    await world.billing.app.get(BillingPrivacyService).erase(actor.userId, 'all');
    const line = async () => (await world.billing.app.get(InvoicesService).exportCsv(currentPeriod())).split('\n').find((l) => l.startsWith(`${tag}-0001;`));
    expect(await line()).toMatch(/;erased-[0-9a-f]{16}$/);
    await send('invoice.voided', { ...invoice, status: 'void' }, created + 5);
    expect(await line()).toBeUndefined();
    const [row] = await world.env.sql(`SELECT status, restricted, workspace, customer_ref, hosted_invoice_url FROM billing.invoices WHERE stripe_invoice_id = $1`, [invoice.id]);
    expect(row).toEqual({ status: 'void', restricted: true, workspace: expect.stringMatching(/^erased-/), customer_ref: row.workspace, hosted_invoice_url: null });
  });

  it("waits for an erasure of the customer's owner under way, and keeps the invoice as the erasure left the rest: restricted, naming nobody", async () => {
    const { actor: { userId }, customer } = await world.privateCustomer();
    const tag = randomUUID().slice(0, 8).toUpperCase();
    const created = Math.floor(Date.now() / 1000);
    const invoice = { id: `in_${tag}`, object: 'invoice', number: `${tag}-0001`, customer, currency: 'eur', created, metadata: {}, status: 'open', subtotal: 1500, total: 1500, amount_paid: 0, hosted_invoice_url: 'https://invoice.stripe.com/i/y' };
    // An erasure under way: it holds the subject's lock, and renames their workspace's rows before it commits.
    const erasing = new pg.Client({ connectionString: world.env.adminUrl });
    await erasing.connect();
    try {
      await erasing.query('BEGIN');
      await erasing.query(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, [userId]);
      const delivery = world.sendEvent('invoice.finalized', invoice, created);
      await new Promise((r) => setTimeout(r, 300));
      expect(await world.env.sql(`SELECT 1 FROM billing.invoices WHERE stripe_invoice_id = $1`, [invoice.id])).toEqual([]);
      await erasing.query(`UPDATE billing.customers SET workspace = 'erased-00000000000000cc' WHERE stripe_customer_id = $1`, [customer]);
      await erasing.query('COMMIT');
      await delivery;
    } finally {
      await erasing.end();
    }
    const [row] = await world.env.sql(`SELECT restricted, workspace, customer_ref, hosted_invoice_url FROM billing.invoices WHERE stripe_invoice_id = $1`, [invoice.id]);
    expect(row).toEqual({ restricted: true, workspace: 'erased-00000000000000cc', customer_ref: 'erased-00000000000000cc', hosted_invoice_url: null });
  });

  it('drops a draft deleted at Stripe from the mirror, and a late event of it does not bring it back', async () => {
    const { actor, customer } = await world.privateCustomer();
    const tag = randomUUID().slice(0, 8).toUpperCase();
    const created = Math.floor(Date.now() / 1000);
    const draft = { id: `in_${tag}`, object: 'invoice', number: null, customer, currency: 'eur', created, metadata: {}, status: 'draft', subtotal: 900, total: 900, amount_paid: 0 };
    // Mirrored while it was a draft at Stripe.
    await world.env.sql(
      `INSERT INTO billing.invoices (stripe_invoice_id, workspace, status, currency, subtotal, net, tax, total, amount_paid, customer_ref, created_at, stripe_version) VALUES ($1, $2, 'draft', 'eur', 900, 900, 0, 900, 0, $3, now(), $4)`,
      [draft.id, `private:${actor.userId}`, customer, created * 1000],
    );
    // Not shown while it is one: its amounts may still change, or it may go.
    expect((await world.billing.app.get(InvoicesService).list(actor, 'private', 10)).data).toEqual([]);
    const send = (t: string, at: number) => world.sendEvent(t, draft, at);
    await send('invoice.deleted', created + 5);
    expect(await world.env.sql(`SELECT 1 FROM billing.invoices WHERE stripe_invoice_id = $1`, [draft.id])).toEqual([]);
    await send('invoice.updated', created + 1);
    expect(await world.env.sql(`SELECT 1 FROM billing.invoices WHERE stripe_invoice_id = $1`, [draft.id])).toEqual([]);
    expect((await world.billing.app.get(InvoicesService).list(actor, 'private', 10)).data).toEqual([]);
  });

  it('exports an invoice in the German month and with the German date: 31 December 23:30 UTC is 1 January', async () => {
    const { actor, customer } = await world.privateCustomer();
    const tag = randomUUID().slice(0, 8).toUpperCase();
    const created = Date.parse('2026-12-31T23:30:00Z') / 1000;
    const invoice = { id: `in_${tag}`, object: 'invoice', number: `${tag}-0001`, customer, currency: 'eur', created, metadata: {}, subtotal: 1500, total_excluding_tax: 1500, total: 1785, amount_paid: 1785, total_taxes: [{ amount: 285 }], status: 'paid' };
    await world.sendEvent('invoice.paid', invoice, created);
    const lineIn = async (period: string) => (await world.billing.app.get(InvoicesService).exportCsv(period)).split('\n').find((l) => l.startsWith(`${tag}-0001;`));
    expect(await lineIn('2026-12')).toBeUndefined();
    expect(await lineIn('2027-01')).toBe(`${tag}-0001;2027-01-01;15.00;2.85;17.85;EUR;${customer}`);

    // Drafted on the month's last evening, finalised after midnight: the books count it by its finalisation.
    const late = randomUUID().slice(0, 8).toUpperCase();
    const drafted = Date.parse('2027-01-31T21:00:00Z') / 1000;
    const finalized = Date.parse('2027-01-31T23:30:00Z') / 1000;
    const renewal = { ...invoice, id: `in_${late}`, number: `${late}-0001`, created: drafted, status_transitions: { finalized_at: finalized, paid_at: finalized } };
    await world.sendEvent('invoice.paid', renewal, finalized);
    const renewalIn = async (period: string) => (await world.billing.app.get(InvoicesService).exportCsv(period)).split('\n').find((l) => l.startsWith(`${late}-0001;`));
    expect(await renewalIn('2027-01')).toBeUndefined();
    expect(await renewalIn('2027-02')).toBe(`${late}-0001;2027-02-01;15.00;2.85;17.85;EUR;${customer}`);
  });

  it('tells of a failed payment only while the invoice is still unpaid: a failure delivered after a retry paid it mails nobody', async () => {
    const { actor, customer } = await world.privateCustomer();
    const created = Math.floor(Date.now() / 1000);
    const failed = async (status: string) => {
      const tag = randomUUID().slice(0, 8).toUpperCase();
      const invoice = { id: `in_${tag}`, object: 'invoice', number: `${tag}-0001`, customer, currency: 'eur', created, metadata: {}, subtotal: 1500, total: 1785, amount_paid: status === 'paid' ? 1785 : 0, status };
      await world.sendEvent('invoice.payment_failed', invoice, created);
      return invoice.id;
    };
    const told = async (invoiceId: string) => (await world.env.sql(`SELECT 1 FROM billing.outbox WHERE type = 'billing.payment.failed' AND payload->'data'->>'invoiceId' = $1`, [invoiceId])).length > 0;
    expect(await told(await failed('open'))).toBe(true);
    expect(await told(await failed('paid'))).toBe(false);
  });
});
