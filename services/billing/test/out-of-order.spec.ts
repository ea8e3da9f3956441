import { describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import Stripe from 'stripe';
import { BillingPrivacyService } from '../src/privacy/billing-privacy.service.js';
import { QuotaService } from '../src/quota/quota.service.js';
import { createEnvelope } from '@ally/contracts';
import { publishEvent, waitFor } from '@ally/testing';
import { billingWorld } from './billing-world.js';

/**
 * Order is not what it seems: a ledger row's number is taken at insert and it
 * becomes visible at commit (two replicas write at once); Stripe does not
 * promise the order of webhooks, and events of one second tie on their time;
 * and a step half done is tried again.
 */
describe('billing when things arrive out of order or stop half-way', () => {
  const world = billingWorld();

  const deliver = (type: string, object: object, created: number) =>
    world.sendWebhook({ id: `evt_${randomUUID().replace(/-/g, '')}`, object: 'event', type, created, data: { object }, api_version: world.stripe.apiVersion, livemode: false });

  it('counts a row that becomes visible after a row with a higher number was already counted', async () => {
    const quota = world.billing.app.get(QuotaService);
    const workspace = randomUUID();
    const user = randomUUID();
    const slow = new pg.Client({ connectionString: world.env.adminUrl });
    const fast = new pg.Client({ connectionString: world.env.adminUrl });
    await slow.connect();
    await fast.connect();
    const insert = `INSERT INTO billing.ledger (message_id, workspace, user_id, model, deployment, prompt_tokens, completion_tokens, tokens, cost, period)
                    VALUES ($1, $2, $3, 'gpt-4o-mini', 'd', $4, 0, $4, 0, to_char(now(), 'YYYY-MM'))`;
    try {
      await slow.query('BEGIN');
      await slow.query(insert, [randomUUID(), workspace, user, 250_000]); // the lower number, committed late
      await fast.query(insert, [randomUUID(), workspace, user, 10]);
      await quota.refresh();
      expect(quota.usage(workspace).used).toBe(10);
      await slow.query('COMMIT');
      await quota.refresh();
      expect(quota.usage(workspace).used).toBe(250_010);
      await quota.refresh();
      expect(quota.usage(workspace).used).toBe(250_010); // and counted once
      expect(quota.check(workspace, user).allowed).toBe(false); // over the free plan's quota
    } finally {
      await slow.end();
      await fast.end();
    }
  });

  it("stores Stripe's current state when the older of two events of the same second comes last", async () => {
    const workspace = randomUUID();
    const customer = await world.sdk.customers.create({ metadata: { workspace } });
    await world.env.sql(`INSERT INTO billing.customers (workspace, stripe_customer_id, created_by) VALUES ($1, $2, $3)`, [workspace, customer.id, randomUUID()]);
    const sub = await world.sdk.subscriptions.create({ customer: customer.id, items: [{ price: 'price_team_monthly', quantity: 1 }], metadata: { workspace, plan: 'team' } });
    const now = await world.sdk.subscriptions.retrieve(sub.id);
    expect(now.status).toBe('active');
    const second = Math.floor(Date.now() / 1000);
    await deliver('customer.subscription.updated', now, second);
    // The `created` event, older but of the same second, arrives last and still says "incomplete".
    await deliver('customer.subscription.created', { ...now, status: 'incomplete' }, second);
    const [row] = await world.env.sql(`SELECT plan, status FROM billing.subscriptions WHERE workspace = $1`, [workspace]);
    expect(row).toEqual({ plan: 'team', status: 'active' });
  });

  it('keeps the later answer from Stripe when two events of the same second are handled at once and the earlier answer commits last (two replicas)', async () => {
    const workspace = randomUUID();
    const customer = await world.sdk.customers.create({ metadata: { workspace } });
    await world.env.sql(`INSERT INTO billing.customers (workspace, stripe_customer_id, created_by) VALUES ($1, $2, $3)`, [workspace, customer.id, randomUUID()]);
    const sub = await world.sdk.subscriptions.create({ customer: customer.id, items: [{ price: 'price_team_monthly', quantity: 1 }], metadata: { workspace, plan: 'team' } });
    const second = Math.floor(Date.now() / 1000);
    const first = `evt_${randomUUID().replace(/-/g, '')}`;
    // The first event's handler has read Stripe (one seat) and then waits: here on an uncommitted record of that very event.
    const holder = new pg.Client({ connectionString: world.env.adminUrl });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query(`INSERT INTO billing.processed_webhooks (event_id, type) VALUES ($1, 'customer.subscription.updated')`, [first]);
      const late = world.sendWebhook({ id: first, object: 'event', type: 'customer.subscription.updated', created: second, data: { object: sub }, api_version: world.stripe.apiVersion, livemode: false });
      await waitFor(async () => ((await world.env.sql(`SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO processed_webhooks%'`)).length ? true : undefined), 'the first event to wait');
      // Meanwhile a seat is added, and its event is handled on the other replica: Stripe now says two.
      const two = await world.sdk.subscriptions.update(sub.id, { items: [{ id: sub.items.data[0].id, quantity: 2 }] });
      await deliver('customer.subscription.updated', two, second);
      expect((await world.env.sql(`SELECT seats FROM billing.subscriptions WHERE workspace = $1`, [workspace]))[0]).toEqual({ seats: 2 });
      await holder.query('ROLLBACK');
      await expect(late).resolves.toEqual({ received: true, duplicate: false });
    } finally {
      await holder.end();
    }
    // The first event's answer from Stripe is the older: it does not take the seat back.
    expect((await world.env.sql(`SELECT seats FROM billing.subscriptions WHERE workspace = $1`, [workspace]))[0]).toEqual({ seats: 2 });
  });

  it("keeps the moment a subscription ended (Stripe's, not the webhook's) through later events about it", async () => {
    const workspace = randomUUID();
    const customer = await world.sdk.customers.create({ metadata: { workspace } });
    await world.env.sql(`INSERT INTO billing.customers (workspace, stripe_customer_id, created_by) VALUES ($1, $2, $3)`, [workspace, customer.id, randomUUID()]);
    const sub = await world.sdk.subscriptions.create({ customer: customer.id, items: [{ price: 'price_team_monthly', quantity: 1 }], metadata: { workspace, plan: 'team' } });
    const canceled = await world.sdk.subscriptions.cancel(sub.id);
    expect(canceled.ended_at).toEqual(expect.any(Number));
    const second = Math.floor(Date.now() / 1000);
    await deliver('customer.subscription.deleted', canceled, second);
    // Told again later (a retry, another field changed): the contract's period does not start anew.
    await new Promise((r) => setTimeout(r, 1_100));
    await deliver('customer.subscription.updated', { ...canceled, metadata: { ...canceled.metadata, note: 'x' } }, second + 5);
    const [row] = await world.env.sql<{ status: string; ended_at: Date }>(`SELECT status, ended_at FROM billing.subscriptions WHERE workspace = $1`, [workspace]);
    expect(row).toEqual({ status: 'canceled', ended_at: new Date(canceled.ended_at! * 1000) });
  });

  it('tells Stripe of an erasure again when the first try failed after our rows were pseudonymised (Art. 17/19)', async () => {
    const userId = randomUUID();
    const customer = await world.sdk.customers.create({ email: 'erika@example.eu' });
    await world.env.sql(`INSERT INTO billing.customers (workspace, stripe_customer_id, created_by) VALUES ($1, $2, $3)`, [`private:${userId}`, customer.id, userId]);
    const privacy = world.billing.app.get(BillingPrivacyService);
    world.stripe.failNext({ status: 500, method: 'DELETE', path: '/v1/customers', times: 3 }); // the SDK's own retries too
    await expect(privacy.erase(userId, 'all')).rejects.toBeTruthy();
    const again = await privacy.erase(userId, 'all');
    expect(again.processorsNotified).toEqual(['stripe']);
    expect(await world.sdk.customers.retrieve(customer.id)).toMatchObject({ deleted: true });
  });

  it("keeps a usage's time in the month its period names when chat's clock is ahead of ours at the month's turn", async () => {
    const now = new Date();
    const nextMonth = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1));
    // Stamped just after the turn by chat, while billing's clock still reads the month before (here: weeks before).
    const occurredAt = new Date(nextMonth.getTime() + 100).toISOString();
    const data = { messageId: randomUUID(), workspace: randomUUID(), userId: randomUUID(), model: 'gpt-4o-mini', deployment: 'gpt-4o-mini-swc', region: 'swedencentral', euResident: true, promptTokens: 3, completionTokens: 4, cost: 0.00001 };
    await publishEvent(world.env, { ...createEnvelope({ type: 'chat.completion.recorded', source: 'chat', data, subject: { userId: data.userId } }), occurredAt });
    const row = await waitFor(async () => (await world.env.sql<{ period: string; created_at: Date }>(`SELECT period, created_at FROM billing.ledger WHERE message_id = $1`, [data.messageId]))[0], 'the usage to be booked');
    expect(row.period).toBe(occurredAt.slice(0, 7));
    expect(row.created_at.toISOString()).toBe(nextMonth.toISOString());
  });

  it("keeps the member count identity's database counted last, not the one a replica with a clock running ahead stamped later", async () => {
    const orgId = randomUUID();
    const event = (type: string, memberCount: number, occurredAt: string, countedAt: string) =>
      ({ ...createEnvelope({ type, source: 'identity', data: { orgId, userId: randomUUID(), role: 'member', memberCount, countedAt } }), occurredAt });
    const seats = async () => (await world.env.sql<{ members: number }>(`SELECT members FROM billing.seat_counts WHERE workspace = $1`, [orgId]))[0]?.members;
    const t = Date.now();
    // Added (count 5) on a replica 200 ms fast, then removed (count 4) on one with the right time 100 ms later.
    await publishEvent(world.env, event('identity.member.added', 5, new Date(t + 200).toISOString(), new Date(t).toISOString()));
    await waitFor(async () => (await seats()) === 5, 'the first count');
    await publishEvent(world.env, { ...event('identity.member.removed', 4, new Date(t + 100).toISOString(), new Date(t + 100).toISOString()) });
    await waitFor(async () => (await seats()) === 4, 'the later count to hold');
  });
});
