import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import Stripe from 'stripe';
import { signStripePayload, startStripeEmulator, type StripeEmulator } from '@ally/emulators';
import type { RunningService } from '@ally/platform';
import { createTestEnv, type TestEnv } from '@ally/testing';
import { billingService } from '../src/index.js';
import { StripeWebhookService } from '../src/webhooks/stripe-webhook.service.js';

/** Stripe does not promise the order of webhooks, and events of one second tie on their time. */
describe('webhooks out of order', () => {
  let env: TestEnv;
  let stripe: StripeEmulator;
  let billing: RunningService;
  let sdk: Stripe;
  let hooks: StripeWebhookService;

  beforeAll(async () => {
    env = await createTestEnv();
    stripe = await startStripeEmulator();
    billing = await env.start(billingService, {
      PLANS_FILE: 'services/billing/config/plans.json',
      STRIPE_API_URL: stripe.url,
      STRIPE_WEBHOOK_SECRET: stripe.webhookSecret,
      METER_POLL_MS: '600000',
    });
    const url = new URL(stripe.url);
    sdk = new Stripe('sk_test_emulator', { host: url.hostname, port: Number(url.port), protocol: 'http' });
    hooks = billing.app.get(StripeWebhookService);
  });

  afterAll(async () => {
    await env?.close();
    await stripe?.close();
  });

  const deliver = (type: string, object: object, created: number) => {
    const payload = JSON.stringify({ id: `evt_${randomUUID().replace(/-/g, '')}`, object: 'event', type, created, data: { object }, api_version: stripe.apiVersion, livemode: false });
    return hooks.receive(Buffer.from(payload).toString('base64'), signStripePayload(payload, stripe.webhookSecret));
  };

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
});
