import { describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { createEnvelope } from '@ally/contracts';
import { publishEvent, waitFor } from '@ally/testing';
import { billingWorld } from './billing-world.js';

/** Stripe refusing a change outright (not away) must not cost billing its own record of what happened. */
describe('billing when Stripe refuses a seat change', () => {
  const world = billingWorld();

  /** An organisation on Team with one seat, as Checkout leaves it. */
  const subscribed = async () => {
    const workspace = randomUUID();
    const customer = await world.sdk.customers.create({ metadata: { workspace } });
    const sub = await world.sdk.subscriptions.create({ customer: customer.id, items: [{ price: 'price_team_monthly', quantity: 1 }], metadata: { workspace, plan: 'team' } });
    await world.env.sql(`INSERT INTO billing.customers (workspace, stripe_customer_id, created_by) VALUES ($1, $2, $3)`, [workspace, customer.id, randomUUID()]);
    await world.env.sql(
      `INSERT INTO billing.subscriptions (workspace, stripe_subscription_id, stripe_item_id, plan, status, seats) VALUES ($1, $2, $3, 'team', 'active', 1)`,
      [workspace, sub.id, sub.items.data[0].id],
    );
    return { workspace, sub };
  };
  const memberAdded = (orgId: string, memberCount: number) =>
    publishEvent(world.env, createEnvelope({ type: 'identity.member.added', source: 'identity', data: { orgId, userId: randomUUID(), role: 'member', memberCount } }));
  const members = async (workspace: string) => (await world.env.sql<{ members: number }>(`SELECT members FROM billing.seat_counts WHERE workspace = $1`, [workspace]))[0]?.members;

  it('keeps the new member count and goes on with the next event (the refused one is not retried into the dead-letter stream)', async () => {
    const { workspace, sub } = await subscribed();
    // As for a subscription cancelled at Stripe whose webhook has not arrived yet: refused however often it is asked.
    world.stripe.failNext({ status: 400, method: 'POST', path: `/v1/subscriptions/${sub.id}`, message: 'A canceled subscription can only update its cancellation_details.', times: 100 });
    await memberAdded(workspace, 2);
    await waitFor(async () => (await members(workspace)) === 2, 'the count to be kept', 5_000);
    // Stripe takes changes again (the subscription was live after all): the next count goes through.
    world.stripe.clearFaults();
    await memberAdded(workspace, 3);
    await waitFor(async () => (await world.sdk.subscriptions.retrieve(sub.id)).items.data[0].quantity === 3, 'the next count to reach Stripe');
    // Stripe is told inside the count's transaction: the count commits a moment after Stripe has it.
    await waitFor(async () => (await members(workspace)) === 3, 'the count to be kept', 5_000);
  });
});
