import { afterAll, beforeAll } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import Stripe from 'stripe';
import { signStripePayload, startStripeEmulator, type StripeEmulator } from '@ally/emulators';
import type { RunningService } from '@ally/platform';
import { createTestEnv, type TestEnv } from '@ally/testing';
import { billingService } from '../src/index.js';
import { StripeWebhookService } from '../src/webhooks/stripe-webhook.service.js';

/** The key of erased subjects' pseudonyms in the billing world. */
export const TEST_PSEUDONYM_KEY = 'a-test-pseudonym-key-of-32-chars';

export interface BillingWorld {
  env: TestEnv;
  stripe: StripeEmulator;
  billing: RunningService;
  /** The Stripe SDK against the emulator, as a test's own Stripe dashboard. */
  sdk: Stripe;
  /** A body signed as Stripe signs it, handed to billing's webhook service. */
  sendWebhook(body: unknown): ReturnType<StripeWebhookService['receive']>;
  /** Another billing replica on the same database and broker (stopped by the test, or with the world). */
  startReplica(): Promise<RunningService>;
  /** A user whose private workspace has a Stripe customer (as Checkout leaves it), billing's row only. */
  privateCustomer(): Promise<{ actor: { userId: string; platformRoles: [] }; customer: string }>;
  /** A Stripe event of `type` about `object`, created at `created` (Unix seconds), sent as the webhook. */
  sendEvent(type: string, object: object, created: number): ReturnType<StripeWebhookService['receive']>;
}

/**
 * billing with the Stripe emulator in a test world of its own, its timers
 * (quota refresh, meter reporting) left to the test; started and closed with
 * the enclosing describe.
 */
export function billingWorld(): BillingWorld {
  const world = {} as BillingWorld;
  beforeAll(async () => {
    world.env = await createTestEnv();
    world.stripe = await startStripeEmulator();
    world.startReplica = () =>
      world.env.start(billingService, {
        PLANS_FILE: 'services/billing/config/plans.json',
        STRIPE_API_URL: world.stripe.url,
        STRIPE_WEBHOOK_SECRET: world.stripe.webhookSecret,
        BILLING_PSEUDONYM_KEY: TEST_PSEUDONYM_KEY,
        QUOTA_REFRESH_MS: '600000',
        METER_POLL_MS: '600000',
      });
    world.billing = await world.startReplica();
    const url = new URL(world.stripe.url);
    world.sdk = new Stripe('sk_test_emulator', { host: url.hostname, port: Number(url.port), protocol: 'http' });
    world.sendWebhook = (body) => {
      const payload = JSON.stringify(body);
      return world.billing.app.get(StripeWebhookService).receive(Buffer.from(payload).toString('base64'), signStripePayload(payload, world.stripe.webhookSecret));
    };
    world.privateCustomer = async () => {
      const actor = { userId: randomUUID(), platformRoles: [] as [] };
      const customer = `cus_${randomUUID().replace(/-/g, '')}`;
      await world.env.sql(`INSERT INTO billing.customers (workspace, stripe_customer_id, created_by) VALUES ($1, $2, $3)`, [`private:${actor.userId}`, customer, actor.userId]);
      return { actor, customer };
    };
    world.sendEvent = (type, object, created) =>
      world.sendWebhook({ id: `evt_${randomUUID()}`, object: 'event', type, created, api_version: world.stripe.apiVersion, livemode: false, data: { object } });
  });
  afterAll(async () => {
    await world.env?.close();
    await world.stripe?.close();
  });
  return world;
}
