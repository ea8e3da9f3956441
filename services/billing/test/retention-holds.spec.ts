import { describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { privacyRetentionRpc } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { billingWorld } from './billing-world.js';

/** A legal hold (or a restriction) keeps a user's private workspace's contract and invoices from a retention run, as it keeps their ledger. */
describe("billing's retention of held users", () => {
  const world = billingWorld();
  /** A usage of five years ago in the user's private workspace, metered long since. */
  const usageOfLongAgo = (user: string) =>
    world.env.sql(
      `INSERT INTO billing.ledger (message_id, workspace, user_id, model, deployment, prompt_tokens, completion_tokens, tokens, cost, period, created_at, meter_status)
       VALUES (gen_random_uuid(), $1, $2, 'gpt-4o-mini', 'gpt-4o-mini@azure-swedencentral', 1, 1, 2, 0.000002, '2021-01', now() - interval '5 years', 'reported')`,
      [`private:${user}`, user],
    );

  it("deletes expired contracts and invoices, but not a held user's private workspace's", async () => {
    const [held, free] = [randomUUID(), randomUUID()];
    const org = randomUUID();
    const customerOf: Record<string, string> = {};
    for (const workspace of [`private:${held}`, `private:${free}`, org]) {
      // A real customer at Stripe, as Checkout made it.
      customerOf[workspace] = (await world.sdk.customers.create({ metadata: { workspace } })).id;
      await world.env.sql(`INSERT INTO billing.customers (workspace, stripe_customer_id, created_by, created_at) VALUES ($1, $2, $3, now() - interval '6 years')`, [
        workspace,
        customerOf[workspace],
        randomUUID(),
      ]);
      await world.env.sql(
        `INSERT INTO billing.subscriptions (workspace, stripe_subscription_id, plan, status, seats, ended_at) VALUES ($1, $2, 'team', 'canceled', 1, now() - interval '5 years')`,
        [workspace, `sub_${randomUUID()}`],
      );
      await world.env.sql(
        `INSERT INTO billing.invoices (stripe_invoice_id, workspace, status, currency, subtotal, tax, total, amount_paid, customer_ref, created_at) VALUES ($1, $2, 'paid', 'eur', 100, 19, 119, 119, 'cus_1', now() - interval '12 years')`,
        [`in_${randomUUID()}`, workspace],
      );
    }
    // A customer whose contract runs, though made long ago, and one who subscribed only lately: both stay.
    const [running, recent] = [randomUUID(), randomUUID()];
    await world.env.sql(`INSERT INTO billing.customers (workspace, stripe_customer_id, created_by, created_at) VALUES ($1, 'cus_running', $2, now() - interval '6 years'), ($3, 'cus_recent', $2, now() - interval '1 year')`, [
      running,
      randomUUID(),
      recent,
    ]);
    await world.env.sql(`INSERT INTO billing.subscriptions (workspace, stripe_subscription_id, plan, status, seats) VALUES ($1, 'sub_running', 'team', 'active', 3)`, [running]);
    const rpc = new RpcClient(await world.env.nats(), world.env.prefix);
    await rpc.connect();
    try {
      const input = { categories: [{ category: 'contract', retentionDays: 4 * 365 }, { category: 'invoices', retentionDays: 10 * 365 + 3 }], heldUserIds: [held] };
      expect((await rpc.call(privacyRetentionRpc('billing'), { ...input, dryRun: true })).results).toEqual([
        // The two ended subscriptions not held, and their customers.
        { category: 'contract', affected: 4 },
        { category: 'invoices', affected: 2 },
      ]);
      await rpc.call(privacyRetentionRpc('billing'), { ...input, dryRun: false });
    } finally {
      await rpc.close();
    }
    expect(await world.env.sql(`SELECT workspace FROM billing.invoices`)).toEqual([{ workspace: `private:${held}` }]);
    expect((await world.env.sql<{ workspace: string }>(`SELECT workspace FROM billing.subscriptions ORDER BY workspace`)).map((r) => r.workspace).sort()).toEqual([`private:${held}`, running].sort());
    expect((await world.env.sql<{ workspace: string }>(`SELECT workspace FROM billing.customers`)).map((r) => r.workspace).sort()).toEqual([`private:${held}`, running, recent].sort());
    // The customers whose records went are gone at Stripe too (the record was the only way to them); the held one stays.
    const atStripe = async (workspace: string) => !(await world.sdk.customers.retrieve(customerOf[workspace])).deleted;
    expect({ held: await atStripe(`private:${held}`), free: await atStripe(`private:${free}`), org: await atStripe(org) }).toEqual({ held: true, free: false, org: false });
  });

  it('deletes many expired customers at Stripe over several slices, each row right after its customer, while the other categories go on', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 120; i++) {
      const workspace = randomUUID();
      const id = (await world.sdk.customers.create({ metadata: { workspace } })).id;
      ids.push(id);
      await world.env.sql(`INSERT INTO billing.customers (workspace, stripe_customer_id, created_by, created_at) VALUES ($1, $2, $3, now() - interval '6 years')`, [workspace, id, randomUUID()]);
    }
    const user = randomUUID();
    await usageOfLongAgo(user);
    const rpc = new RpcClient(await world.env.nats(), world.env.prefix);
    await rpc.connect();
    const categories = [{ category: 'contract', retentionDays: 4 * 365 }, { category: 'usage-ledger', retentionDays: 4 * 365 }];
    const slices: { category: string; affected: number; complete?: boolean }[][] = [];
    try {
      // Slices far too short for 60 customers at Stripe, as privacy gives them (its 2 s with a slow Stripe).
      for (let pending = categories; pending.length && slices.length < 200; ) {
        const { results } = await rpc.call(privacyRetentionRpc('billing'), { categories: pending, dryRun: false, heldUserIds: [], stopBy: new Date(Date.now() + 100).toISOString() });
        slices.push(results);
        // Never a row whose customer is still at Stripe.
        for (const { stripe_customer_id } of await world.env.sql<{ stripe_customer_id: string }>(`SELECT stripe_customer_id FROM billing.customers WHERE stripe_customer_id = ANY($1)`, [ids])) {
          expect((await world.sdk.customers.retrieve(stripe_customer_id)).deleted).toBeFalsy();
        }
        pending = pending.filter((c) => results.some((r) => r.category === c.category && r.complete === false));
      }
    } finally {
      await rpc.close();
    }
    expect(slices.length).toBeGreaterThan(1);
    // The ledger was done while the customers still took their slices: it does not wait behind them.
    const doneIn = (category: string) => slices.findIndex((s) => s.some((r) => r.category === category && r.complete !== false));
    expect(doneIn('usage-ledger')).toBeGreaterThanOrEqual(0);
    expect(doneIn('usage-ledger')).toBeLessThan(doneIn('contract'));
    expect(slices.flat().filter((r) => r.category === 'usage-ledger').reduce((n, r) => n + r.affected, 0)).toBe(1);
    expect(slices.flat().filter((r) => r.category === 'contract').reduce((n, r) => n + r.affected, 0)).toBeGreaterThanOrEqual(120);
    expect(await world.env.sql(`SELECT 1 FROM billing.customers WHERE stripe_customer_id = ANY($1)`, [ids])).toEqual([]);
    for (const id of ids) expect((await world.sdk.customers.retrieve(id)).deleted).toBe(true);
  });

  it('keeps an invoice ten years from the end of its calendar year (§ 147 AO), in German time, whatever its age in days', async () => {
    const year = Number(new Intl.DateTimeFormat('en', { timeZone: 'Europe/Berlin', year: 'numeric' }).format(new Date()));
    const invoice = async (createdAt: string, finalizedAt: string | null = null) => {
      const id = `in_${randomUUID()}`;
      await world.env.sql(
        `INSERT INTO billing.invoices (stripe_invoice_id, workspace, status, currency, subtotal, tax, total, amount_paid, customer_ref, created_at, finalized_at) VALUES ($1, $2, 'paid', 'eur', 100, 19, 119, 119, 'cus_1', $3::timestamptz, $4::timestamptz)`,
        [id, randomUUID(), createdAt, finalizedAt],
      );
      return id;
    };
    // Its year ended more than ten years ago: gone.
    const expired = await invoice(`${year - 11}-12-31T12:00:00+01:00`);
    // Over ten years old in days, but its year ended less than ten years ago: kept until 1 January of next year.
    const yearNotOver = await invoice(`${year - 10}-01-02T12:00:00+01:00`);
    // Half past midnight on New Year's Day in Germany is still the old year in UTC: the German year counts, so kept.
    const newYearsNight = await invoice(`${year - 10}-01-01T00:30:00+01:00`);
    // Drafted on New Year's Eve, finalised after midnight: an invoice of the new year, as the books date it.
    const finalizedInNewYear = await invoice(`${year - 11}-12-31T23:30:00+01:00`, `${year - 10}-01-01T00:30:00+01:00`);
    const rpc = new RpcClient(await world.env.nats(), world.env.prefix);
    await rpc.connect();
    try {
      const input = { categories: [{ category: 'invoices', retentionDays: 10 * 365 + 3 }], heldUserIds: [] };
      await rpc.call(privacyRetentionRpc('billing'), { ...input, dryRun: false });
    } finally {
      await rpc.close();
    }
    const left = (await world.env.sql<{ id: string }>(`SELECT stripe_invoice_id AS id FROM billing.invoices WHERE stripe_invoice_id = ANY($1)`, [[expired, yearNotOver, newYearsNight, finalizedInNewYear]])).map((r) => r.id);
    expect(left.sort()).toEqual([yearNotOver, newYearsNight, finalizedInNewYear].sort());
  });

  it('reads a retention slice on its own clock: a deadline already past by privacy’s clock still leaves the span privacy gave', async () => {
    const user = randomUUID();
    await usageOfLongAgo(user);
    const rpc = new RpcClient(await world.env.nats(), world.env.prefix);
    await rpc.connect();
    try {
      // As a billing replica whose clock runs 10 s ahead of privacy's sees privacy's deadline: already past.
      const { results } = await rpc.call(privacyRetentionRpc('billing'), {
        categories: [{ category: 'usage-ledger', retentionDays: 4 * 365 }],
        dryRun: false,
        heldUserIds: [],
        stopBy: new Date(Date.now() - 10_000).toISOString(),
        stopWithinMs: 2_000,
      });
      expect(results).toEqual([expect.objectContaining({ category: 'usage-ledger' })]);
      expect(results[0].complete).not.toBe(false);
    } finally {
      await rpc.close();
    }
    expect(await world.env.sql(`SELECT 1 FROM billing.ledger WHERE user_id = $1`, [user])).toEqual([]);
  });
});
