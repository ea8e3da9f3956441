import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import Stripe from 'stripe';
import { jetstream } from '@nats-io/jetstream';
import { createEnvelope, type EventEnvelope } from '@ally/contracts';
import { billingService } from '../src/index.js';
import { startStripeEmulator, type StripeEmulator } from '@ally/emulators';
import type { RunningService } from '@ally/platform';
import { createTestEnv, waitFor, type TestEnv } from '@ally/testing';

const TOTAL = 10_000;
const CHUNK = 500;

/**
 * The "done means": 10,000 completion events, with JetStream
 * redeliveries (same envelope, new Nats-Msg-Id) and republications (same
 * message id, new envelope) mixed in and billing stopped and started in the
 * middle, give exactly 10,000 ledger rows and 10,000 meter events at Stripe.
 */
describe('usage ledger: exactly once into the ledger and to Stripe', () => {
  let env: TestEnv;
  let stripe: StripeEmulator;
  let billing: RunningService;
  let customer: string;
  const workspace = randomUUID();
  const config = () => ({
    PLANS_FILE: 'services/billing/config/plans.json',
    STRIPE_API_URL: stripe.url,
    STRIPE_WEBHOOK_SECRET: stripe.webhookSecret,
    METER_POLL_MS: '20',
    METER_REPORT_BATCH: '500',
    QUOTA_REFRESH_MS: '200',
  });

  beforeAll(async () => {
    env = await createTestEnv();
    stripe = await startStripeEmulator({ meters: [{ event_name: 'ally_tokens' }] });
    billing = await env.start(billingService, config());
    const url = new URL(stripe.url);
    const sdk = new Stripe('sk_test_ledger', { host: url.hostname, port: Number(url.port), protocol: 'http' });
    customer = (await sdk.customers.create({ name: 'Ledger Test GmbH', metadata: { workspace } })).id;
    await env.sql(`INSERT INTO billing.customers (workspace, stripe_customer_id, created_by) VALUES ($1, $2, $3)`, [workspace, customer, randomUUID()]);
  }, 30_000);

  afterAll(async () => {
    await env?.close();
    await stripe?.close();
  });

  it('records 10,000 completions once, across duplicates and a restart', async () => {
    const js = jetstream(await env.nats());
    const subject = env.subject('ally.evt.chat.completion.recorded');
    const userId = randomUUID();
    const completion = (i: number) => ({
      messageId: randomUUID(),
      workspace,
      userId,
      model: 'gpt-4o-mini',
      deployment: 'gpt-4o-mini-swc',
      region: 'swedencentral',
      euResident: true,
      promptTokens: 10 + (i % 37),
      completionTokens: 5 + (i % 101),
      cost: 0.0001,
    });
    const envelopes = Array.from({ length: TOTAL }, (_, i) => createEnvelope({ type: 'chat.completion.recorded', source: 'chat', data: completion(i), subject: { userId } }));
    const expectedTokens = envelopes.reduce((sum, e) => sum + e.data.promptTokens + e.data.completionTokens, 0);

    // Each envelope once; every 7th again under a new Nats-Msg-Id (a redelivery JetStream cannot de-duplicate);
    // every 11th as a new envelope carrying the same message id (a second publication of one completion).
    const publish = async (from: number, to: number) => {
      for (let start = from; start < to; start += CHUNK) {
        const sends: Promise<unknown>[] = [];
        for (let i = start; i < Math.min(to, start + CHUNK); i++) {
          const e = envelopes[i];
          sends.push(js.publish(subject, JSON.stringify(e), { msgID: e.id }));
          if (i % 7 === 0) sends.push(js.publish(subject, JSON.stringify(e), { msgID: `${e.id}:again` }));
          if (i % 11 === 0) {
            const twin: EventEnvelope = createEnvelope({ type: 'chat.completion.recorded', source: 'chat', data: e.data, subject: { userId } });
            sends.push(js.publish(subject, JSON.stringify(twin), { msgID: twin.id }));
          }
        }
        await Promise.all(sends);
      }
    };
    const ledgerCount = async () => (await env.sql<{ n: number }>(`SELECT count(*)::int AS n FROM billing.ledger`))[0].n;

    await publish(0, TOTAL / 2);
    // Billing stops while it is ingesting and reporting…
    await waitFor(async () => ((await ledgerCount()) >= 1_000 ? true : undefined), 'ingest to be under way', 30_000);
    await env.stop(billing);
    const atStop = await ledgerCount();
    expect(atStop).toBeLessThan(TOTAL);
    // …the rest arrives while it is down, and it starts again.
    await publish(TOTAL / 2, TOTAL);
    billing = await env.start(billingService, config());

    // Generous: on a shared 2-core machine under other load, 10,000 entries to Stripe have taken over a minute.
    await waitFor(async () => ((await ledgerCount()) >= TOTAL ? true : undefined), 'all completions in the ledger', 90_000);
    await waitFor(
      async () => ((await env.sql(`SELECT 1 FROM billing.ledger WHERE meter_status = 'pending' LIMIT 1`)).length === 0 ? true : undefined),
      'every ledger entry reported',
      120_000,
    );
    // Anything still in flight would show up as an extra row or event now.
    await new Promise((r) => setTimeout(r, 300));

    const [ledger] = await env.sql<{ n: number; tokens: number; distinct_ids: number; reported: number }>(
      `SELECT count(*)::int AS n, sum(tokens)::int AS tokens, count(DISTINCT message_id)::int AS distinct_ids,
              count(*) FILTER (WHERE meter_status = 'reported')::int AS reported
         FROM billing.ledger`,
    );
    expect(ledger).toEqual({ n: TOTAL, tokens: expectedTokens, distinct_ids: TOTAL, reported: TOTAL });

    const events = stripe.meterEvents({ event_name: 'ally_tokens', customer });
    expect(events).toHaveLength(TOTAL);
    expect(new Set(events.map((e) => e.identifier)).size).toBe(TOTAL);
    expect(new Set(events.map((e) => e.identifier))).toEqual(new Set(envelopes.map((e) => e.data.messageId)));
    expect(events.reduce((sum, e) => sum + e.value, 0)).toBe(expectedTokens);
  }, 300_000);
});
