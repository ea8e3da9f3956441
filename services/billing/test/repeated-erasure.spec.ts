import { describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { BillingRpc, privacyRpcs } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { Pseudonyms } from '../src/common/erased-subjects.js';
import { currentPeriod } from '../src/common/workspace-key.js';
import { UsageService } from '../src/ledger/usage.service.js';
import { QuotaService } from '../src/quota/quota.service.js';
import { billingWorld } from './billing-world.js';

/**
 * A subject may have their private workspace erased, subscribe again, and be
 * erased again (also their whole account): each erasure completes, and the
 * workspace's quota stays one answer wherever it is asked.
 */
describe('erasures one after another', () => {
  const world = billingWorld();
  const withRpc = async <T>(fn: (rpc: RpcClient) => Promise<T>): Promise<T> => {
    const rpc = new RpcClient(await world.env.nats(), world.env.prefix);
    await rpc.connect();
    try {
      return await fn(rpc);
    } finally {
      await rpc.close();
    }
  };
  const erase = (userId: string, scope: string) => withRpc((rpc) => rpc.call(privacyRpcs('billing').erase, { userId, scope }));
  /** Stripe's events not handed to billing yet, as Stripe would deliver them. */
  let delivered = 0;
  const deliver = async () => {
    const events = world.stripe.events();
    for (const event of events.slice(delivered)) await world.sendWebhook(event);
    delivered = events.length;
  };
  /** Checkout of Team for the private workspace, paid, its events delivered: the new customer and subscription. */
  const subscribe = async (actor: { userId: string; platformRoles: [] }) => {
    const { url } = await withRpc((rpc) => rpc.call(BillingRpc.checkout, { workspace: 'private', plan: 'team' }, { actor }));
    const done = world.stripe.completeCheckout(url.split('/').pop()!);
    await deliver();
    return { customer: done.customer.id as string, subscription: done.subscription!.id as string };
  };

  it('completes private, Checkout, private, Checkout, all, all: every customer deleted at Stripe, every row kept under the pseudonym', async () => {
    const actor = { userId: randomUUID(), platformRoles: [] as [] };
    const alias = world.billing.app.get(Pseudonyms).of(actor.userId);
    // Stripe's cancellations (its customers deleted) reach billing after each erasure.
    const eraseAndDeliver = async (scope: string) => {
      await expect(erase(actor.userId, scope)).resolves.toMatchObject({ processorsNotified: ['stripe'] });
      await deliver();
    };
    delivered = world.stripe.events().length;
    const held = [await subscribe(actor)];
    await eraseAndDeliver('private');
    held.push(await subscribe(actor));
    await eraseAndDeliver('private');
    held.push(await subscribe(actor));
    await eraseAndDeliver('all');
    // A retry (privacy's saga repeats a step it heard nothing from) completes too.
    await eraseAndDeliver('all');

    for (const { customer } of held) expect(world.stripe.retrieve(customer)).toMatchObject({ deleted: true });
    expect(await world.env.sql(`SELECT 1 FROM billing.customers WHERE workspace = $1 UNION ALL SELECT 1 FROM billing.subscriptions WHERE workspace = $1`, [`private:${actor.userId}`])).toEqual([]);
    const customers = await world.env.sql<{ stripe_customer_id: string }>(`SELECT stripe_customer_id FROM billing.customers WHERE workspace = $1`, [alias]);
    expect(customers.map((c) => c.stripe_customer_id).sort()).toEqual(held.map((h) => h.customer).sort());
    // Each subscription's own row followed Stripe's cancellation, under the pseudonym.
    const subscriptions = await world.env.sql<{ stripe_subscription_id: string; status: string }>(`SELECT stripe_subscription_id, status FROM billing.subscriptions WHERE workspace = $1`, [alias]);
    expect(subscriptions.map((s) => s.stripe_subscription_id).sort()).toEqual(held.map((h) => h.subscription).sort());
    expect(subscriptions.map((s) => s.status)).toEqual(['canceled', 'canceled', 'canceled']);
    // Nobody is told of those cancellations: the pseudonym names no workspace notify could find an owner of.
    expect(await world.env.sql(`SELECT 1 FROM billing.outbox WHERE type = 'billing.subscription.changed' AND payload->'data'->>'workspace' = $1`, [alias])).toEqual([]);
  });

  it("counts this month's tokens from before a private erasure the same on every replica, a fresh one too, and in the usage API", async () => {
    const actor = { userId: randomUUID(), platformRoles: [] as [] };
    const key = `private:${actor.userId}`;
    const spend = (tokens: number) =>
      world.env.sql(
        `INSERT INTO billing.ledger (message_id, workspace, user_id, model, deployment, prompt_tokens, completion_tokens, tokens, cost, period) VALUES ($1, $2, $3, 'gpt-4o-mini', 'd', $4, 0, $4, 0.01, $5)`,
        [randomUUID(), key, actor.userId, tokens, currentPeriod()],
      );
    const running = world.billing.app.get(QuotaService);
    await spend(150_000);
    await running.refresh();
    await erase(actor.userId, 'private');
    await spend(2_000);
    await running.refresh();
    // A replica started after the erasure reads the earlier tokens under the pseudonym.
    const replica = await world.startReplica();
    try {
      const fresh = replica.app.get(QuotaService);
      await fresh.refresh();
      for (const quota of [running, fresh]) expect(quota.usage(key)).toEqual({ used: 152_000, quota: 200_000 });
      expect(fresh.check('private', actor.userId)).toEqual(running.check('private', actor.userId));
      expect(running.check('private', actor.userId)).toEqual({ allowed: true, remaining: 48_000 });
      for (const app of [world.billing.app, replica.app]) expect(await app.get(UsageService).view(actor, 'private')).toMatchObject({ tokensUsed: 152_000, tokenQuota: 200_000 });
    } finally {
      await world.env.stop(replica);
    }
  });
});
