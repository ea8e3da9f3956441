import { describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { waitFor } from '@ally/testing';
import { QuotaService } from '../src/quota/quota.service.js';
import { billingWorld } from './billing-world.js';

describe('a quota refresh asked for while one runs', () => {
  const world = billingWorld();

  it('includes what was committed before it was asked for, not only what the running one had read', async () => {
    const quota = world.billing.app.get(QuotaService);
    const userId = randomUUID();
    const key = `private:${userId}`;
    // A new plan makes the running refresh write the month's quota: held there by a lock, it has read the caps already.
    await world.env.sql(`INSERT INTO billing.subscriptions (workspace, stripe_subscription_id, plan, status, seats) VALUES ($1, $2, 'team', 'active', 1)`, [key, `sub_${randomUUID()}`]);
    const blocker = await world.env.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE billing.period_quotas IN SHARE MODE');
      const running = quota.refresh();
      await waitFor(
        async () => (await world.env.sql(`SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%INSERT INTO period_quotas%'`)).length > 0,
        'the running refresh to wait at the quota record',
      );
      // A cap set now (committed), then a refresh asked for: it must see the cap.
      await world.env.sql(`INSERT INTO billing.caps (workspace, user_id, monthly_tokens) VALUES ($1, '', 100)`, [key]);
      const asked = quota.refresh();
      await blocker.query('COMMIT');
      await running;
      await asked;
    } finally {
      await blocker.end();
    }
    expect(quota.check(key, userId)).toEqual({ allowed: true, remaining: 100 });
  });
});
