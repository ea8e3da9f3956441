import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { startStripeEmulator, type StripeEmulator } from '@ally/emulators';
import type { RunningService } from '@ally/platform';
import { createTestEnv, type TestEnv } from '@ally/testing';
import { billingService } from '../src/index.js';
import { QuotaService } from '../src/quota/quota.service.js';

/** Two billing replicas write the ledger at once: a row's number is taken at insert, its visibility comes at commit. */
describe('the quota tail of the ledger', () => {
  let env: TestEnv;
  let stripe: StripeEmulator;
  let billing: RunningService;

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
  });

  afterAll(async () => {
    await env?.close();
    await stripe?.close();
  });

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
});
