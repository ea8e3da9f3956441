import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import Stripe from 'stripe';
import { signStripePayload, startStripeEmulator, type StripeEmulator } from '@ally/emulators';
import type { RunningService } from '@ally/platform';
import { createTestEnv, type TestEnv } from '@ally/testing';
import { billingService } from '../src/index.js';
import { BillingPrivacyService } from '../src/privacy/billing-privacy.service.js';
import { QuotaService } from '../src/quota/quota.service.js';
import { StripeWebhookService } from '../src/webhooks/stripe-webhook.service.js';

/**
 * Order is not what it seems: a ledger row's number is taken at insert and it
 * becomes visible at commit (two replicas write at once); Stripe does not
 * promise the order of webhooks, and events of one second tie on their time;
 * and a step half done is tried again.
 */
describe('billing when things arrive out of order or stop half-way', () => {
  let env: TestEnv;
  let stripe: StripeEmulator;
  let billing: RunningService;
  let sdk: Stripe;

  beforeAll(async () => {
    env = await createTestEnv();
    stripe = await startStripeEmulator();
    billing = await env.start(billingService, {
      PLANS_FILE: 'services/billing/config/plans.json',
      STRIPE_API_URL: stripe.url,
      STRIPE_WEBHOOK_SECRET: stripe.webhookSecret,
      QUOTA_REFRESH_MS: '600000', // refreshed by the test only
      METER_POLL_MS: '600000',
    });
    const url = new URL(stripe.url);
    sdk = new Stripe('sk_test_emulator', { host: url.hostname, port: Number(url.port), protocol: 'http' });
  });

  afterAll(async () => {
    await env?.close();
    await stripe?.close();
  });

  const deliver = (type: string, object: object, created: number) => {
    const payload = JSON.stringify({ id: `evt_${randomUUID().replace(/-/g, '')}`, object: 'event', type, created, data: { object }, api_version: stripe.apiVersion, livemode: false });
    return billing.app.get(StripeWebhookService).receive(Buffer.from(payload).toString('base64'), signStripePayload(payload, stripe.webhookSecret));
  };

  it('counts a row that becomes visible after a row with a higher number was already counted', async () => {
    const quota = billing.app.get(QuotaService);
    const workspace = randomUUID();
    const user = randomUUID();
    const slow = new pg.Client({ connectionString: env.adminUrl });
    const fast = new pg.Client({ connectionString: env.adminUrl });
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
    const customer = await sdk.customers.create({ metadata: { workspace } });
    await env.sql(`INSERT INTO billing.customers (workspace, stripe_customer_id, created_by) VALUES ($1, $2, $3)`, [workspace, customer.id, randomUUID()]);
    const sub = await sdk.subscriptions.create({ customer: customer.id, items: [{ price: 'price_team_monthly', quantity: 1 }], metadata: { workspace, plan: 'team' } });
    const now = await sdk.subscriptions.retrieve(sub.id);
    expect(now.status).toBe('active');
    const second = Math.floor(Date.now() / 1000);
    await deliver('customer.subscription.updated', now, second);
    // The `created` event, older but of the same second, arrives last and still says "incomplete".
    await deliver('customer.subscription.created', { ...now, status: 'incomplete' }, second);
    const [row] = await env.sql(`SELECT plan, status FROM billing.subscriptions WHERE workspace = $1`, [workspace]);
    expect(row).toEqual({ plan: 'team', status: 'active' });
  });

  it('tells Stripe of an erasure again when the first try failed after our rows were pseudonymised (Art. 17/19)', async () => {
    const userId = randomUUID();
    const customer = await sdk.customers.create({ email: 'erika@example.eu' });
    await env.sql(`INSERT INTO billing.customers (workspace, stripe_customer_id, created_by) VALUES ($1, $2, $3)`, [`private:${userId}`, customer.id, userId]);
    const privacy = billing.app.get(BillingPrivacyService);
    stripe.failNext({ status: 500, method: 'DELETE', path: '/v1/customers', times: 3 }); // the SDK's own retries too
    await expect(privacy.erase(userId, 'all')).rejects.toBeTruthy();
    const again = await privacy.erase(userId, 'all');
    expect(again.processorsNotified).toEqual(['stripe']);
    expect(await sdk.customers.retrieve(customer.id)).toMatchObject({ deleted: true });
  });
});
