import { describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { privacyRetentionRpc } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { billingWorld } from './billing-world.js';

/** A legal hold (or a restriction) keeps a user's private workspace's contract and invoices from a retention run, as it keeps their ledger. */
describe("billing's retention of held users", () => {
  const world = billingWorld();

  it("deletes expired contracts and invoices, but not a held user's private workspace's", async () => {
    const [held, free] = [randomUUID(), randomUUID()];
    const org = randomUUID();
    for (const workspace of [`private:${held}`, `private:${free}`, org]) {
      await world.env.sql(
        `INSERT INTO billing.subscriptions (workspace, stripe_subscription_id, plan, status, seats, ended_at) VALUES ($1, $2, 'team', 'canceled', 1, now() - interval '5 years')`,
        [workspace, `sub_${randomUUID()}`],
      );
      await world.env.sql(
        `INSERT INTO billing.invoices (stripe_invoice_id, workspace, status, currency, subtotal, tax, total, amount_paid, customer_ref, created_at) VALUES ($1, $2, 'paid', 'eur', 100, 19, 119, 119, 'cus_1', now() - interval '11 years')`,
        [`in_${randomUUID()}`, workspace],
      );
    }
    const rpc = new RpcClient(await world.env.nats(), world.env.prefix);
    await rpc.connect();
    try {
      const input = { categories: [{ category: 'contract', retentionDays: 4 * 365 }, { category: 'invoices', retentionDays: 10 * 365 }], heldUserIds: [held] };
      expect((await rpc.call(privacyRetentionRpc('billing'), { ...input, dryRun: true })).results).toEqual([
        { category: 'contract', affected: 2 },
        { category: 'invoices', affected: 2 },
      ]);
      await rpc.call(privacyRetentionRpc('billing'), { ...input, dryRun: false });
    } finally {
      await rpc.close();
    }
    for (const table of ['subscriptions', 'invoices']) {
      expect(await world.env.sql(`SELECT workspace FROM billing.${table}`)).toEqual([{ workspace: `private:${held}` }]);
    }
  });
});
