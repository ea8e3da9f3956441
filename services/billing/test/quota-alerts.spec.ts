import { describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { LOGGER } from '@ally/platform';
import { Pseudonyms } from '../src/common/erased-subjects.js';
import { BILLING_CONFIG } from '../src/config.js';
import { PlansService } from '../src/plans/plans.service.js';
import { currentPeriod } from '../src/common/workspace-key.js';
import { QuotaAlerts } from '../src/quota/quota-alerts.service.js';
import { QuotaService } from '../src/quota/quota.service.js';
import { billingWorld } from './billing-world.js';

/** The 80 % / 100 % alerts measure this month's usage: a late event of a month gone by raises none. */
describe('quota alerts', () => {
  const world = billingWorld();
  const ledger = (workspace: string, period: string, tokens: number) =>
    world.env.sql(
      `INSERT INTO billing.ledger (message_id, workspace, user_id, model, deployment, prompt_tokens, completion_tokens, tokens, cost, period) VALUES ($1, $2, $3, 'gpt-4o-mini', 'd', $4, 0, $4, 0.01, $5)`,
      [randomUUID(), workspace, randomUUID(), tokens, period],
    );

  it('raises both levels for this month and none for usage of last month processed late', async () => {
    const alerts = world.billing.app.get(QuotaAlerts);
    const ds = world.billing.app.get(DataSource);
    const [late, now] = [`private:${randomUUID()}`, `private:${randomUUID()}`];
    const lastMonth = currentPeriod(new Date(Date.now() - 40 * 24 * 3600_000));
    // Far beyond the Free plan's 200,000 tokens either way.
    await ledger(late, lastMonth, 1_000_000);
    await ds.transaction((em) => alerts.afterUsage(em, late, lastMonth));
    await ledger(now, currentPeriod(), 1_000_000);
    await ds.transaction((em) => alerts.afterUsage(em, now, currentPeriod()));
    expect(await world.env.sql(`SELECT workspace, percent FROM billing.quota_alerts WHERE workspace IN ($1, $2) ORDER BY percent`, [late, now])).toEqual([
      { workspace: now, percent: 80 },
      { workspace: now, percent: 100 },
    ]);
  });

  it('raises 100 % when two usages within one refresh of the quota cross it (the quota then refuses, so no later usage would)', async () => {
    const alerts = world.billing.app.get(QuotaAlerts);
    const ds = world.billing.app.get(DataSource);
    const key = `private:${randomUUID()}`;
    // 85 % of the Free plan's 200,000, then 20 % more, with no refresh of the quota's memory between them.
    await ledger(key, currentPeriod(), 170_000);
    await ds.transaction((em) => alerts.afterUsage(em, key, currentPeriod()));
    await ledger(key, currentPeriod(), 40_000);
    await ds.transaction((em) => alerts.afterUsage(em, key, currentPeriod()));
    expect(await world.env.sql(`SELECT percent FROM billing.quota_alerts WHERE workspace = $1 ORDER BY percent`, [key])).toEqual([{ percent: 80 }, { percent: 100 }]);
  });

  it('measures nothing before the quota first read plans and seats (usage waiting at start looked like Free with one seat)', async () => {
    const app = world.billing.app;
    const ds = app.get(DataSource);
    // A replica just starting: its event consumers run before its quota's first load.
    const starting = new QuotaService(ds, app.get(PlansService), app.get(Pseudonyms), app.get(BILLING_CONFIG), app.get(LOGGER));
    const alerts = new QuotaAlerts(starting);
    const key = `private:${randomUUID()}`;
    // 74.5 % of Team's 2,000,000: no alert; against Free's 200,000 it read as far past 100 %.
    await world.env.sql(`INSERT INTO billing.subscriptions (workspace, stripe_subscription_id, plan, status, seats) VALUES ($1, $2, 'team', 'active', 1)`, [key, `sub_${randomUUID()}`]);
    await ledger(key, currentPeriod(), 1_490_000);
    let settled = false;
    const measuring = ds.transaction((em) => alerts.afterUsage(em, key, currentPeriod())).then(() => (settled = true));
    await new Promise((r) => setTimeout(r, 200));
    expect(settled).toBe(false);
    await starting.refresh();
    await measuring;
    expect(await world.env.sql(`SELECT percent FROM billing.quota_alerts WHERE workspace = $1`, [key])).toEqual([]);
  });

  it('raises a level again when the month reaches it under a higher quota (an upgrade), not again under the same one', async () => {
    const alerts = world.billing.app.get(QuotaAlerts);
    const quota = world.billing.app.get(QuotaService);
    const ds = world.billing.app.get(DataSource);
    const key = `private:${randomUUID()}`;
    const raised = async () =>
      (await world.env.sql<{ percent: number }>(`SELECT payload->'data'->>'percent' AS percent FROM billing.outbox WHERE subject LIKE '%quota.threshold-reached' AND payload->'data'->>'workspace' = $1 ORDER BY created_at`, [key])).map((r) => Number(r.percent));
    // Past Free's 200,000: both levels.
    await ledger(key, currentPeriod(), 210_000);
    await ds.transaction((em) => alerts.afterUsage(em, key, currentPeriod()));
    expect(await raised()).toEqual([80, 100]);
    await ds.transaction((em) => alerts.afterUsage(em, key, currentPeriod()));
    expect(await raised()).toEqual([80, 100]);
    // On Team (2,000,000) and at 85 % of it: 80 % again, not 100 %.
    await world.env.sql(`INSERT INTO billing.subscriptions (workspace, stripe_subscription_id, plan, status, seats) VALUES ($1, $2, 'team', 'active', 1)`, [key, `sub_${randomUUID()}`]);
    await quota.refresh();
    await ledger(key, currentPeriod(), 1_490_000);
    await ds.transaction((em) => alerts.afterUsage(em, key, currentPeriod()));
    expect(await raised()).toEqual([80, 100, 80]);
  });
});
