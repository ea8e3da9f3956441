import { describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { privacyRpcs } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { Pseudonyms } from '../src/common/erased-subjects.js';
import { currentPeriod } from '../src/common/workspace-key.js';
import { QuotaAlerts } from '../src/quota/quota-alerts.service.js';
import { UsageService } from '../src/ledger/usage.service.js';
import { QuotaService } from '../src/quota/quota.service.js';
import { billingWorld } from './billing-world.js';

/** A past month's usage shows that month's quota, not today's: the quota service records each month's as it changes. */
describe('quota of a month', () => {
  const world = billingWorld();
  /** Billing's erasure step, as privacy's saga calls it. */
  const erase = async (userId: string) => {
    const rpc = new RpcClient(await world.env.nats(), world.env.prefix);
    await rpc.connect();
    try {
      await rpc.call(privacyRpcs('billing').erase, { userId, scope: 'all' });
    } finally {
      await rpc.close();
    }
  };

  it('is recorded as the plan changes, shown for its month, unknown for a month never recorded, and for a private workspace never under its owner’s id', async () => {
    const quota = world.billing.app.get(QuotaService);
    const usage = world.billing.app.get(UsageService);
    const actor = { userId: randomUUID(), platformRoles: [] as [] };
    const key = `private:${actor.userId}`;
    const period = currentPeriod();
    const lastMonth = currentPeriod(new Date(Date.now() - 40 * 24 * 3600_000));
    const recorded = () => world.env.sql<{ period: string; token_quota: string }>(`SELECT period, token_quota FROM billing.period_quotas WHERE workspace = $1 ORDER BY period`, [world.billing.app.get(Pseudonyms).of(actor.userId)]);

    await world.env.sql(`INSERT INTO billing.subscriptions (workspace, stripe_subscription_id, plan, status, seats) VALUES ($1, $2, 'team', 'active', 1)`, [key, `sub_${randomUUID()}`]);
    await quota.refresh();
    expect(await recorded()).toEqual([{ period, token_quota: '2000000' }]);
    // The plan changes within the month: the month's record follows (the last quota of a month is the one it ends with).
    await world.env.sql(`UPDATE billing.subscriptions SET plan = 'business' WHERE workspace = $1`, [key]);
    await quota.refresh();
    expect(await recorded()).toEqual([{ period, token_quota: '6000000' }]);
    expect((await usage.view(actor, 'private')).tokenQuota).toBe(6_000_000);

    // Last month, when the workspace was on Team (as the service recorded it then), and a month with no record.
    await world.env.sql(`INSERT INTO billing.period_quotas (workspace, period, token_quota) VALUES ($1, $2, 2000000)`, [world.billing.app.get(Pseudonyms).of(actor.userId), lastMonth]);
    expect(await usage.view(actor, 'private', lastMonth)).toMatchObject({ period: lastMonth, tokenQuota: 2_000_000 });
    expect(await usage.view(actor, 'private', '2020-01')).toMatchObject({ period: '2020-01', tokensUsed: 0, tokenQuota: null });

    // After the subject's erasure (their plan gone, their usage still in this replica's memory) nothing names them.
    await erase(actor.userId);
    await quota.refresh();
    expect(await world.env.sql(`SELECT 1 FROM billing.period_quotas WHERE workspace LIKE '%' || $1 || '%'`, [actor.userId])).toEqual([]);
    expect((await recorded()).map((r) => r.period)).toEqual([lastMonth, period]);
  });

  it('keeps a month correct across an erasure after a plan change and a subscription that ended, and the erasure leaves no alert or unsent mail of the subject', async () => {
    const quota = world.billing.app.get(QuotaService);
    const usage = world.billing.app.get(UsageService);
    const alerts = world.billing.app.get(QuotaAlerts);
    const ds = world.billing.app.get(DataSource);
    const period = currentPeriod();
    const actor = { userId: randomUUID(), platformRoles: [] as [] };
    const key = `private:${actor.userId}`;
    const recorded = async (workspace: string) =>
      (await world.env.sql<{ token_quota: string }>(`SELECT token_quota FROM billing.period_quotas WHERE workspace = $1 AND period = $2`, [workspace, period]))[0]?.token_quota;

    // On Team with usage this month; 80 % of Free would be an alert, so one is raised and its mail waits in the outbox.
    await world.env.sql(`INSERT INTO billing.subscriptions (workspace, stripe_subscription_id, plan, status, seats) VALUES ($1, $2, 'team', 'active', 1)`, [key, `sub_${randomUUID()}`]);
    await world.env.sql(
      `INSERT INTO billing.ledger (message_id, workspace, user_id, model, deployment, prompt_tokens, completion_tokens, tokens, cost, period) VALUES ($1, $2, $3, 'gpt-4o-mini', 'd', 1000, 1000, 2000, 0.01, $4)`,
      [randomUUID(), key, actor.userId, period],
    );
    await quota.refresh();
    // 1,700,000 more: 85 % of Team's 2,000,000.
    await world.env.sql(
      `INSERT INTO billing.ledger (message_id, workspace, user_id, model, deployment, prompt_tokens, completion_tokens, tokens, cost, period) VALUES ($1, $2, $3, 'gpt-4o-mini', 'd', 1700000, 0, 1700000, 1, $4)`,
      [randomUUID(), key, actor.userId, period],
    );
    await ds.transaction((em) => alerts.afterUsage(em, key, period));
    expect(await world.env.sql(`SELECT percent FROM billing.quota_alerts WHERE workspace = $1`, [key])).toEqual([{ percent: 80 }]);
    // The plan changes, and the subject is erased before the next refresh.
    await world.env.sql(`UPDATE billing.subscriptions SET plan = 'business' WHERE workspace = $1`, [key]);
    await erase(actor.userId);
    await quota.refresh();
    await quota.refresh();
    // The month ends on Business (its renamed plan), not Free (what their id alone would have).
    expect(await recorded(world.billing.app.get(Pseudonyms).of(actor.userId))).toBe('6000000');
    expect(await world.env.sql(`SELECT 1 FROM billing.quota_alerts WHERE workspace = $1`, [key])).toEqual([]);
    expect(await world.env.sql(`SELECT 1 FROM billing.outbox WHERE strpos(payload::text, $1) > 0`, [actor.userId])).toEqual([]);
    // The refresh still works for everyone else (a cap sets it off).
    const other = { userId: randomUUID(), platformRoles: [] as [] };
    await expect(usage.setCap(other, { workspace: 'private', monthlyTokens: 1000 })).resolves.toMatchObject({ monthlyTokens: 1000 });

    // A subscription that ends this month: the month ends on Free.
    const ending = `private:${randomUUID()}`;
    await world.env.sql(`INSERT INTO billing.subscriptions (workspace, stripe_subscription_id, plan, status, seats) VALUES ($1, $2, 'team', 'active', 1)`, [ending, `sub_${randomUUID()}`]);
    await quota.refresh();
    const endingKey = world.billing.app.get(Pseudonyms).of(ending.slice('private:'.length));
    expect(await recorded(endingKey)).toBe('2000000');
    await world.env.sql(`UPDATE billing.subscriptions SET status = 'canceled' WHERE workspace = $1`, [ending]);
    await quota.refresh();
    expect(await recorded(endingKey)).toBe('200000');
  });
});
