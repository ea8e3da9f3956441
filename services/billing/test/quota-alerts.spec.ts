import { describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { currentPeriod } from '../src/common/workspace-key.js';
import { QuotaAlerts } from '../src/quota/quota-alerts.service.js';
import { billingWorld } from './billing-world.js';

/** The 80 % / 100 % alerts measure this month's usage: a late event of a month gone by raises none. */
describe('quota alerts', () => {
  const world = billingWorld();

  it('raises both levels for this month and none for usage of last month processed late', async () => {
    const alerts = world.billing.app.get(QuotaAlerts);
    const ds = world.billing.app.get(DataSource);
    const [late, now] = [`private:${randomUUID()}`, `private:${randomUUID()}`];
    const lastMonth = currentPeriod(new Date(Date.now() - 40 * 24 * 3600_000));
    // Far beyond the Free plan's 200,000 tokens either way.
    await ds.transaction((em) => alerts.afterUsage(em, late, lastMonth, 1_000_000));
    await ds.transaction((em) => alerts.afterUsage(em, now, currentPeriod(), 1_000_000));
    expect(await world.env.sql(`SELECT workspace, percent FROM billing.quota_alerts WHERE workspace IN ($1, $2) ORDER BY percent`, [late, now])).toEqual([
      { workspace: now, percent: 80 },
      { workspace: now, percent: 100 },
    ]);
  });
});
