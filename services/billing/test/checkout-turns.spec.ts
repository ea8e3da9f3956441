import { describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { BillingRpc, privacyRpcs } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { billingWorld } from './billing-world.js';

/** Checkout as people click it: twice at once, changing their mind, again after erasing their private data; and a late invoice after an erasure. */
describe('Checkout and erased customers', () => {
  const world = billingWorld();

  const withRpc = async <T>(work: (rpc: RpcClient) => Promise<T>): Promise<T> => {
    const rpc = new RpcClient(await world.env.nats(), world.env.prefix);
    await rpc.connect();
    try {
      return await work(rpc);
    } finally {
      await rpc.close();
    }
  };
  const openSessions = async (customer: string) => (await world.sdk.checkout.sessions.list({ customer, status: 'open', limit: 100 })).data;
  const customerOf = async (userId: string) => (await world.env.sql<{ stripe_customer_id: string }>(`SELECT stripe_customer_id FROM billing.customers WHERE workspace = $1`, [`private:${userId}`]))[0]?.stripe_customer_id;

  it('leaves one open Checkout when two start at once, and a new one when the plan changes back within the minute', () =>
    withRpc(async (rpc) => {
      const actor = { userId: randomUUID(), platformRoles: [] as [] };
      const checkout = (plan: string) => rpc.call(BillingRpc.checkout, { workspace: 'private', plan }, { actor });
      await checkout('team'); // the customer exists from here
      const customer = (await customerOf(actor.userId))!;
      await Promise.all([checkout('business'), checkout('team')]);
      expect(await openSessions(customer)).toHaveLength(1);

      // What an invoice must name is collected, and kept on the customer its invoices go to; Stripe Tax works out the VAT.
      const [session] = await openSessions(customer);
      expect(session).toMatchObject({ billing_address_collection: 'required', tax_id_collection: { enabled: true }, automatic_tax: { enabled: true } });
      const asked = world.stripe.requests({ method: 'POST', path: '/v1/checkout/sessions' }).at(-1)!.params;
      expect(asked.customer_update).toEqual({ name: 'auto', address: 'auto' });

      const team = await checkout('team');
      await checkout('business');
      const back = await checkout('team');
      const open = await openSessions(customer);
      expect(open).toHaveLength(1);
      expect(open[0].url).toBe(back.url);
      expect(open[0].metadata?.plan).toBe('team');
      expect(back.url).not.toBe(team.url);
    }));

  it('answers 409 to a checkout that waited 5 s for another of its workspace, instead of holding a database connection without end', () =>
    withRpc(async (rpc) => {
      const actor = { userId: randomUUID(), platformRoles: [] as [] };
      await rpc.call(BillingRpc.checkout, { workspace: 'private', plan: 'team' }, { actor });
      // Another checkout of the workspace holds its turn (stuck on Stripe, say).
      const holder = await world.env.connect();
      try {
        await holder.query(`SELECT pg_advisory_lock(hashtext($1))`, [`checkout:private:${actor.userId}`]);
        const started = Date.now();
        await expect(rpc.call(BillingRpc.checkout, { workspace: 'private', plan: 'business' }, { actor })).rejects.toMatchObject({
          status: 409,
          message: 'Another checkout of this workspace is under way; try again in a moment',
        });
        expect(Date.now() - started).toBeGreaterThanOrEqual(4_500);
      } finally {
        await holder.end();
      }
    }), 30_000);

  it('opens a Checkout again after the private workspace was erased (Stripe replayed the deleted customer: a 500)', () =>
    withRpc(async (rpc) => {
      const actor = { userId: randomUUID(), platformRoles: [] as [] };
      await rpc.call(BillingRpc.checkout, { workspace: 'private', plan: 'team' }, { actor });
      const first = await customerOf(actor.userId);
      await rpc.call(privacyRpcs('billing').erase, { userId: actor.userId, scope: 'private' });
      expect(await rpc.call(BillingRpc.checkout, { workspace: 'private', plan: 'team' }, { actor })).toMatchObject({ url: expect.any(String) });
      const second = await customerOf(actor.userId);
      expect(second).toBeDefined();
      expect(second).not.toBe(first);
    }));

  it('opens a Checkout with a new customer after the workspace\'s customer was deleted at Stripe (in the Dashboard), instead of a 502 for good', () =>
    withRpc(async (rpc) => {
      const actor = { userId: randomUUID(), platformRoles: [] as [] };
      await rpc.call(BillingRpc.checkout, { workspace: 'private', plan: 'team' }, { actor });
      const first = (await customerOf(actor.userId))!;
      // Paying until then; Stripe ends the subscription with the customer, but its event of that may come later.
      const workspace = `private:${actor.userId}`;
      await world.env.sql(`INSERT INTO billing.subscriptions (workspace, stripe_subscription_id, plan, status, seats) VALUES ($1, $2, 'team', 'active', 1)`, [workspace, `sub_${randomUUID()}`]);
      await world.sdk.customers.del(first);
      await world.sendEvent('customer.deleted', { id: first, object: 'customer', deleted: true }, Math.floor(Date.now() / 1000));
      expect(await customerOf(actor.userId)).toBeUndefined();
      expect(await world.env.sql(`SELECT status FROM billing.subscriptions WHERE workspace = $1`, [workspace])).toEqual([{ status: 'canceled' }]);
      expect(await world.env.sql(`SELECT payload->'data'->>'status' AS status FROM billing.outbox WHERE type = 'billing.subscription.changed' AND payload->'data'->>'workspace' = $1`, [workspace])).toEqual([{ status: 'canceled' }]);
      // Within the day Stripe replays a creation's answer by its idempotency key: the dead customer is not taken again.
      expect(await rpc.call(BillingRpc.checkout, { workspace: 'private', plan: 'team' }, { actor })).toMatchObject({ url: expect.any(String) });
      const second = (await customerOf(actor.userId))!;
      expect(second).not.toBe(first);
      expect(await openSessions(second)).toHaveLength(1);
    }));

  it('keeps an invoice Stripe reports after the erasure restricted, naming nobody, as the others', () =>
    withRpc(async (rpc) => {
      const actor = { userId: randomUUID(), platformRoles: [] as [] };
      await rpc.call(BillingRpc.checkout, { workspace: 'private', plan: 'team' }, { actor });
      const customer = (await customerOf(actor.userId))!;
      await rpc.call(privacyRpcs('billing').erase, { userId: actor.userId, scope: 'all' });
      const invoiceId = `in_${randomUUID().replace(/-/g, '')}`;
      await world.sendWebhook({
        id: `evt_${randomUUID().replace(/-/g, '')}`,
        object: 'event',
        type: 'invoice.paid',
        created: Math.floor(Date.now() / 1000),
        api_version: world.stripe.apiVersion,
        livemode: false,
        data: { object: { id: invoiceId, object: 'invoice', customer, status: 'paid', currency: 'eur', subtotal: 1500, tax: 285, total: 1785, amount_paid: 1785, created: Math.floor(Date.now() / 1000), hosted_invoice_url: 'https://invoice.stripe.com/i/x', number: 'A-1' } },
      });
      const [row] = await world.env.sql(`SELECT workspace, restricted, customer_ref, hosted_invoice_url FROM billing.invoices WHERE stripe_invoice_id = $1`, [invoiceId]);
      expect(row).toEqual({ workspace: expect.stringMatching(/^erased-/), restricted: true, customer_ref: row.workspace, hosted_invoice_url: null });
    }));
});
