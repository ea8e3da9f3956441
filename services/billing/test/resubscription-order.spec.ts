import { describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { billingWorld } from './billing-world.js';

/** Stripe does not promise the order of its events: a re-subscription is kept whichever of its events comes first. */
describe('webhooks of two subscriptions of one workspace', () => {
  const world = billingWorld();
  const eventId = () => `evt_${randomUUID().replace(/-/g, '')}`;
  const event = (type: string, object: object, created: number) => ({ id: eventId(), object: 'event', type, created, data: { object }, api_version: world.stripe.apiVersion, livemode: false });
  const workspaceWithCustomer = async () => {
    const workspace = randomUUID();
    const customer = await world.sdk.customers.create({ metadata: { workspace } });
    await world.env.sql(`INSERT INTO billing.customers (workspace, stripe_customer_id, created_by) VALUES ($1, $2, $3)`, [workspace, customer.id, randomUUID()]);
    return { workspace, customer: customer.id };
  };
  const row = async (workspace: string) => (await world.env.sql(`SELECT stripe_subscription_id, plan, status FROM billing.subscriptions WHERE workspace = $1`, [workspace]))[0];

  it("a re-subscription's created event that arrives before the old subscription's deleted event is not lost", async () => {
    const { workspace, customer } = await workspaceWithCustomer();
    const t = Math.floor(Date.now() / 1000);
    const s1 = await world.sdk.subscriptions.create({ customer, items: [{ price: 'price_team_monthly', quantity: 1 }], metadata: { workspace, plan: 'team' } });
    await world.sendWebhook(event('customer.subscription.created', s1, t - 100));
    expect(await row(workspace)).toMatchObject({ stripe_subscription_id: s1.id, status: 'active' });

    const canceled = await world.sdk.subscriptions.cancel(s1.id);
    const s2 = await world.sdk.subscriptions.create({ customer, items: [{ price: 'price_business_monthly', quantity: 1 }], metadata: { workspace, plan: 'business' } });
    // Stripe does not promise order: S2's creation comes first, S1's deletion after it.
    await world.sendWebhook(event('customer.subscription.created', s2, t - 10));
    await world.sendWebhook(event('customer.subscription.deleted', canceled, t - 20));
    expect(await row(workspace)).toMatchObject({ stripe_subscription_id: s2.id, plan: 'business', status: 'active' });
  });

  it("a re-subscription read before the old subscription's end was stored (by another replica, or one whose clock is ahead) still takes the row", async () => {
    const { workspace, customer } = await workspaceWithCustomer();
    const t = Math.floor(Date.now() / 1000);
    const s1 = await world.sdk.subscriptions.create({ customer, items: [{ price: 'price_team_monthly', quantity: 1 }], metadata: { workspace, plan: 'team' } });
    await world.sendWebhook(event('customer.subscription.created', s1, t - 100));
    await world.sendWebhook(event('customer.subscription.deleted', await world.sdk.subscriptions.cancel(s1.id), t - 20));
    // The old one's end as a replica read it a minute after the new one's creation is read below.
    await world.env.sql(`UPDATE billing.subscriptions SET stripe_version = stripe_version + 60000 WHERE workspace = $1`, [workspace]);
    const s2 = await world.sdk.subscriptions.create({ customer, items: [{ price: 'price_business_monthly', quantity: 1 }], metadata: { workspace, plan: 'business' } });
    await world.sendWebhook(event('customer.subscription.created', s2, t - 10));
    expect(await row(workspace)).toMatchObject({ stripe_subscription_id: s2.id, plan: 'business', status: 'active' });
    // The old one's events, delivered again, do not take it back.
    await world.sendWebhook(event('customer.subscription.deleted', await world.sdk.subscriptions.retrieve(s1.id), t - 20));
    expect(await row(workspace)).toMatchObject({ stripe_subscription_id: s2.id, status: 'active' });
  });

  it('a subscription held as live that Stripe no longer has counts as ended: a new one takes its row', async () => {
    const { workspace, customer } = await workspaceWithCustomer();
    const t = Math.floor(Date.now() / 1000);
    await world.env.sql(
      `INSERT INTO billing.subscriptions (workspace, stripe_subscription_id, plan, status, seats, stripe_version) VALUES ($1, $2, 'team', 'active', 1, 0)`,
      [workspace, `sub_gone_${randomUUID().slice(0, 8)}`],
    );
    const s2 = await world.sdk.subscriptions.create({ customer, items: [{ price: 'price_business_monthly', quantity: 1 }], metadata: { workspace, plan: 'business' } });
    await world.sendWebhook(event('customer.subscription.created', s2, t - 10));
    expect(await row(workspace)).toMatchObject({ stripe_subscription_id: s2.id, plan: 'business', status: 'active' });
  });

  it('ends a subscription billing holds as live once Stripe no longer has it, whatever its last copy said', async () => {
    const { workspace, customer } = await workspaceWithCustomer();
    const gone = `sub_gone_${randomUUID().slice(0, 8)}`;
    await world.env.sql(`INSERT INTO billing.subscriptions (workspace, stripe_subscription_id, plan, status, seats, stripe_version) VALUES ($1, $2, 'team', 'active', 1, 0)`, [workspace, gone]);
    const copy = { id: gone, object: 'subscription', customer, status: 'active', items: { data: [] }, metadata: { workspace, plan: 'team' } };
    await world.sendWebhook(event('customer.subscription.updated', copy, Math.floor(Date.now() / 1000)));
    expect(await world.env.sql(`SELECT status, ended_at IS NOT NULL AS ended FROM billing.subscriptions WHERE workspace = $1`, [workspace])).toEqual([{ status: 'canceled', ended: true }]);
  });

  it('a subscription that expired unpaid (incomplete_expired) has ended: its contract data\'s period runs from then', async () => {
    const { workspace, customer } = await workspaceWithCustomer();
    world.stripe.declinePayments(customer);
    const s1 = await world.sdk.subscriptions.create({ customer, items: [{ price: 'price_team_monthly', quantity: 1 }], metadata: { workspace, plan: 'team' } });
    await world.sendWebhook(event('customer.subscription.created', s1, s1.created));
    expect((await world.env.sql(`SELECT status, ended_at FROM billing.subscriptions WHERE workspace = $1`, [workspace]))[0]).toEqual({ status: 'incomplete', ended_at: null });
    const [expired] = (await world.stripe.advanceTime(24 * 3600)).filter((e) => e.type === 'customer.subscription.deleted' && (e.data as any).object.id === s1.id);
    await world.sendWebhook(expired);
    const [ended] = await world.env.sql(`SELECT status, ended_at FROM billing.subscriptions WHERE workspace = $1`, [workspace]);
    expect(ended).toEqual({ status: 'incomplete_expired', ended_at: expect.any(Date) });
  });

  it('a second subscription while the first still runs at Stripe does not take the row', async () => {
    const { workspace, customer } = await workspaceWithCustomer();
    const t = Math.floor(Date.now() / 1000);
    const s1 = await world.sdk.subscriptions.create({ customer, items: [{ price: 'price_team_monthly', quantity: 1 }], metadata: { workspace, plan: 'team' } });
    await world.sendWebhook(event('customer.subscription.created', s1, t - 100));
    const s2 = await world.sdk.subscriptions.create({ customer, items: [{ price: 'price_business_monthly', quantity: 1 }], metadata: { workspace, plan: 'business' } });
    await world.sendWebhook(event('customer.subscription.created', s2, t - 10));
    expect(await row(workspace)).toMatchObject({ stripe_subscription_id: s1.id, plan: 'team', status: 'active' });
  });
});
