import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { billingService } from '../src/index.js';
import { startStripeEmulator, type StripeEmulator } from '@ally/emulators';
import { createTestEnv, waitFor, type TestEnv } from '@ally/testing';

/** A usage entry Stripe refuses as invalid again and again ends as `refused` with the reason; a passing fault is retried. */
describe('meter events Stripe refuses for good', () => {
  let env: TestEnv;
  let stripe: StripeEmulator;

  beforeAll(async () => {
    env = await createTestEnv();
    stripe = await startStripeEmulator({ meters: [{ event_name: 'ally_tokens' }] });
    await env.start(billingService, { PLANS_FILE: 'services/billing/config/plans.json', STRIPE_API_URL: stripe.url, STRIPE_WEBHOOK_SECRET: stripe.webhookSecret, METER_POLL_MS: '20' });
  }, 30_000);

  afterAll(async () => {
    await env?.close();
    await stripe?.close();
  });

  const entry = async (workspace: string) => {
    const id = randomUUID();
    await env.sql(
      `INSERT INTO billing.ledger (message_id, workspace, user_id, model, deployment, prompt_tokens, completion_tokens, tokens, cost, period)
       VALUES ($1, $2, $3, 'gpt-4o-mini', 'd', 10, 5, 15, 0, to_char(now(), 'YYYY-MM'))`,
      [id, workspace, randomUUID()],
    );
    return id;
  };
  const state = async (id: string) => (await env.sql(`SELECT meter_status, meter_attempts, meter_error FROM billing.ledger WHERE message_id = $1`, [id]))[0];

  it('gives up after three refusals, and reports after a passing one', async () => {
    const workspace = randomUUID();
    await env.sql(`INSERT INTO billing.customers (workspace, stripe_customer_id, created_by) VALUES ($1, 'cus_deleted', $2)`, [workspace, randomUUID()]);
    stripe.failNext({ status: 404, path: '/v1/billing/meter_events', times: 3, message: 'No such customer: cus_deleted' });
    const refused = await entry(workspace);
    await waitFor(async () => (await state(refused))?.meter_status === 'refused', 'the entry given up', 15_000);
    expect(await state(refused)).toEqual({ meter_status: 'refused', meter_attempts: 3, meter_error: expect.stringContaining('No such customer') });

    stripe.failNext({ status: 400, path: '/v1/billing/meter_events', times: 1 });
    const reported = await entry(workspace);
    await waitFor(async () => (await state(reported))?.meter_status === 'reported', 'the entry reported on its second try', 15_000);
    expect((await state(reported)).meter_attempts).toBe(2);
  }, 30_000);

  it("counts only Stripe's refusals towards giving up, not its passing faults", async () => {
    const workspace = randomUUID();
    await env.sql(`INSERT INTO billing.customers (workspace, stripe_customer_id, created_by) VALUES ($1, 'cus_flaky', $2)`, [workspace, randomUUID()]);
    // Two passes that fail with 500 (each with the SDK's two retries), then one refusal: still worth trying.
    stripe.failNext({ status: 500, path: '/v1/billing/meter_events', times: 6 });
    stripe.failNext({ status: 400, path: '/v1/billing/meter_events', times: 1 });
    const id = await entry(workspace);
    await waitFor(async () => (await state(id))?.meter_status === 'reported', 'the entry reported after the faults', 20_000);
    expect((await env.sql(`SELECT meter_refusals FROM billing.ledger WHERE message_id = $1`, [id]))[0].meter_refusals).toBe(1);
  }, 30_000);
});
