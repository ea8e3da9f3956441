import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import Stripe from 'stripe';
import { createEnvelope } from '@ally/contracts';
import { billingService } from '../src/index.js';
import { signStripePayload, startStripeEmulator, type StripeEmulator } from '@ally/emulators';
import type { RunningService } from '@ally/platform';
import { createTestEnv, publishEvent, waitFor, type TestEnv } from '@ally/testing';
import { ReconciliationService } from '../src/ledger/reconciliation.service.js';
import { StripeWebhookService } from '../src/webhooks/stripe-webhook.service.js';

describe('meter reconciliation and Stripe meter error reports', () => {
  let env: TestEnv;
  let stripe: StripeEmulator;
  let billing: RunningService;
  let customer: string;
  const workspace = randomUUID();
  const userId = randomUUID();
  const period = new Date().toISOString().slice(0, 7);

  beforeAll(async () => {
    env = await createTestEnv();
    stripe = await startStripeEmulator({ meters: [{ event_name: 'ally_tokens' }] });
    billing = await env.start(billingService, {
      PLANS_FILE: 'services/billing/config/plans.json',
      STRIPE_API_URL: stripe.url,
      STRIPE_WEBHOOK_SECRET: stripe.webhookSecret,
      METER_POLL_MS: '50',
    });
    const url = new URL(stripe.url);
    const sdk = new Stripe('sk_test_reconcile', { host: url.hostname, port: Number(url.port), protocol: 'http' });
    customer = (await sdk.customers.create({ name: 'Abgleich GmbH' })).id;
    await env.sql(`INSERT INTO billing.customers (workspace, stripe_customer_id, created_by) VALUES ($1, $2, $3)`, [workspace, customer, randomUUID()]);
    for (let i = 0; i < 5; i++) {
      const e = createEnvelope({
        type: 'chat.completion.recorded',
        source: 'chat',
        data: { messageId: randomUUID(), workspace, userId, model: 'gpt-4o-mini', deployment: 'd', region: 'swedencentral', euResident: true, promptTokens: 100, completionTokens: 20 * i, cost: 0 },
      });
      await publishEvent(env, e);
    }
    await waitFor(async () => (await env.sql(`SELECT 1 FROM billing.ledger WHERE meter_status = 'reported'`)).length === 5, 'five reported entries');
  }, 30_000);

  afterAll(async () => {
    await env?.close();
    await stripe?.close();
  });

  const discrepancyEvents = () => env.sql<{ payload: string }>(`SELECT payload FROM billing.outbox WHERE type = 'billing.meter.discrepancy-found'`);

  it('runs the daily reconciliation on one replica of several, once per period', async () => {
    const config = { PLANS_FILE: 'services/billing/config/plans.json', STRIPE_API_URL: stripe.url, STRIPE_WEBHOOK_SECRET: stripe.webhookSecret };
    const second = await env.start(billingService, config);
    try {
      const replicas = [billing, second].map((b) => b.app.get(ReconciliationService));
      const first = await Promise.all([...replicas, ...replicas].map((r) => r.runIfDue()));
      expect(first.filter(Boolean)).toHaveLength(1);
      expect(await Promise.all(replicas.map((r) => r.runIfDue()))).toEqual([false, false]);
      // A day later (RECONCILE_INTERVAL_MS) it is due again, for one of them.
      await env.sql(`UPDATE billing.scheduled_jobs SET last_started_at = now() - interval '1 day'`);
      expect((await Promise.all([...replicas, ...replicas].map((r) => r.runIfDue()))).filter(Boolean)).toHaveLength(1);
    } finally {
      await env.stop(second);
    }
  });

  it('finds no discrepancy when Stripe has what the ledger reported', async () => {
    const result = await billing.app.get(ReconciliationService).reconcile(period);
    expect(result).toEqual({ period, workspaces: 1, discrepancies: [], unchecked: [] });
    expect(await discrepancyEvents()).toEqual([]);
  });

  it('goes on past a workspace whose customer Stripe does not have, naming it, not as a discrepancy; Stripe away fails the run', async () => {
    const gone = randomUUID();
    await env.sql(`INSERT INTO billing.customers (workspace, stripe_customer_id, created_by) VALUES ($1, 'cus_neverheardof', $2)`, [gone, randomUUID()]);
    try {
      const result = await billing.app.get(ReconciliationService).reconcile(period);
      expect(result).toEqual({ period, workspaces: 2, discrepancies: [], unchecked: [gone] });
      expect(await discrepancyEvents()).toEqual([]);
      stripe.failNext({ status: 500, path: /event_summaries/, times: 10 });
      await expect(billing.app.get(ReconciliationService).reconcile(period)).rejects.toThrow();
      expect(await billing.ctx.registry.metrics()).toMatch(/ally_billing_reconciliations_total\{[^}]*outcome="failed"[^}]*\} 1/);
    } finally {
      stripe.clearFaults();
      await env.sql(`DELETE FROM billing.customers WHERE workspace = $1`, [gone]);
    }
  });

  it('raises billing.meter.discrepancy-found and the metric for an entry marked reported that never reached Stripe', async () => {
    await env.sql(
      `INSERT INTO billing.ledger (message_id, workspace, user_id, model, deployment, prompt_tokens, completion_tokens, tokens, cost, period, meter_status, reported_at)
       VALUES ($1, $2, $3, 'gpt-4o-mini', 'd', 70, 7, 77, 0, $4, 'reported', now())`,
      [randomUUID(), workspace, userId, period],
    );
    const result = await billing.app.get(ReconciliationService).reconcile(period);
    expect(result.discrepancies).toEqual([{ workspace, period, ledgerTokens: 500 + 200 + 77, stripeTokens: 500 + 200 }]);
    const events = await discrepancyEvents();
    expect(events).toHaveLength(1);
    const payload = typeof events[0].payload === 'string' ? JSON.parse(events[0].payload) : events[0].payload;
    expect(payload).toMatchObject({ type: 'billing.meter.discrepancy-found', data: { workspace, period, ledgerTokens: 777, stripeTokens: 700 } });
    const metrics = await billing.ctx.registry.metrics();
    expect(metrics).toMatch(/ally_billing_meter_discrepancies_total(\{[^}]*\})? 1/);
    expect(metrics).toMatch(/ally_billing_meter_discrepancy_workspaces\{[^}]*period="\d{4}-\d{2}"[^}]*\} 1/);
  });

  it('sends the ledger entries named in a meter error report again later under a new identifier, gives one up dropped three times, and only counts one it cannot match', async () => {
    const [row] = await env.sql<{ message_id: string }>(`SELECT message_id FROM billing.ledger WHERE meter_status = 'reported' ORDER BY seq LIMIT 1`);
    const webhooks = billing.app.get(StripeWebhookService);
    const deliver = (event: object) => {
      const payload = JSON.stringify(event);
      return webhooks.receive(Buffer.from(payload).toString('base64'), signStripePayload(payload, stripe.webhookSecret));
    };
    const before = stripe.meterEvents().length;
    // The thin (v2) form Stripe sends to event destinations.
    await deliver({
      id: `evt_${randomUUID().replace(/-/g, '')}`,
      object: 'v2.core.event',
      type: 'v1.billing.meter.error_report_triggered',
      created: new Date().toISOString(),
      related_object: { id: 'mtr_x', type: 'billing.meter', url: '/v1/billing/meters/mtr_x' },
      data: {
        developer_message_summary: 'There is 1 invalid event',
        reason: { error_count: 1, error_types: [{ code: 'meter_event_no_customer_defined', error_count: 1, sample_errors: [{ error_message: 'no customer', request: { identifier: row.message_id } }] }] },
        validation_start: new Date().toISOString(),
        validation_end: new Date().toISOString(),
      },
    });
    // Stripe dropped it: sent again in an hour (time for the cause to be mended), under an identifier of its own, since
    // Stripe (and the emulator) take one they have seen within 24 hours as already counted.
    const [requeued] = await env.sql(`SELECT meter_status, meter_resends, meter_next_at > now() + interval '50 minutes' AS later FROM billing.ledger WHERE message_id = $1`, [row.message_id]);
    expect(requeued).toEqual({ meter_status: 'pending', meter_resends: 1, later: true });
    await env.sql(`UPDATE billing.ledger SET meter_next_at = now() WHERE message_id = $1`, [row.message_id]); // the hour is up
    await waitFor(async () => (await env.sql(`SELECT 1 FROM billing.ledger WHERE message_id = $1 AND meter_status = 'reported'`, [row.message_id])).length === 1, 'the entry reported again');
    expect(stripe.meterEvents().slice(before).map((e) => e.identifier)).toEqual([`${row.message_id}.r1`]);
    const dropped = (identifier: string) =>
      deliver({
        id: `evt_${randomUUID().replace(/-/g, '')}`,
        object: 'v2.core.event',
        type: 'v1.billing.meter.error_report_triggered',
        created: new Date().toISOString(),
        related_object: { id: 'mtr_x', type: 'billing.meter', url: '/v1/billing/meters/mtr_x' },
        data: { reason: { error_count: 1, error_types: [{ code: 'meter_event_no_customer_defined', error_count: 1, sample_errors: [{ error_message: 'no customer', request: { identifier } }] }] } },
      });
    // A late report about the first sending (Stripe counted the second) sends nothing again.
    await dropped(row.message_id);
    expect(await env.sql(`SELECT meter_status, meter_resends FROM billing.ledger WHERE message_id = $1`, [row.message_id])).toEqual([{ meter_status: 'reported', meter_resends: 1 }]);


    // Dropped three times in all: given up as refused (reconciliation shows the gap), not sent for ever.
    await dropped(`${row.message_id}.r1`);
    await env.sql(`UPDATE billing.ledger SET meter_next_at = now() WHERE message_id = $1`, [row.message_id]);
    await waitFor(async () => (await env.sql(`SELECT 1 FROM billing.ledger WHERE message_id = $1 AND meter_status = 'reported' AND meter_resends = 2`, [row.message_id])).length === 1, 'the second re-send');
    await dropped(`${row.message_id}.r2`);
    expect(await env.sql(`SELECT meter_status, meter_error FROM billing.ledger WHERE message_id = $1`, [row.message_id])).toEqual([{ meter_status: 'refused', meter_error: 'Stripe dropped it after accepting it, 3 times' }]);

    // A thin notification without its data, which Stripe does not give out when asked: refused for now (503), nothing
    // recorded, so Stripe delivers it again (taken as handled, the identifiers it names were lost for good).
    const thin = { id: `evt_${randomUUID().replace(/-/g, '')}`, object: 'v2.core.event', type: 'v1.billing.meter.error_report_triggered', created: new Date().toISOString(), related_object: { id: 'mtr_x', type: 'billing.meter', url: '/v1/billing/meters/mtr_x' } };
    await expect(deliver(thin)).rejects.toMatchObject({ status: 503 });
    expect(await env.sql(`SELECT 1 FROM billing.processed_webhooks WHERE event_id = $1`, [thin.id])).toEqual([]);

    // The v1 snapshot form without identifiers: metric and log only.
    await deliver({ id: `evt_${randomUUID().replace(/-/g, '')}`, object: 'event', type: 'billing.meter.error_report_triggered', created: Math.floor(Date.now() / 1000), data: { object: { meter: 'mtr_x', reason: { error_count: 3, error_types: [{ code: 'meter_event_invalid_value', error_count: 3 }] } } } });
    const metrics = await billing.ctx.registry.metrics();
    expect(metrics).toMatch(/ally_billing_meter_error_reports_total\{[^}]*outcome="requeued"[^}]*\} 3/);
    expect(metrics).toMatch(/ally_billing_meter_error_reports_total\{[^}]*outcome="unidentified"[^}]*\} 2/);
  });
});
