import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { categoriesOf, privacyRetentionRpc } from '@ally/contracts';
import type { CategoryRetentionRule, PurgeRule } from '@ally/persistence';
import { AgeRetentionService, CATEGORY_RETENTION_RULES, RETENTION_RULES } from '@ally/platform';
import { startPlatformWorld, type PlatformWorld } from './platform-world.js';

/**
 * Every retention rule's SQL against the real migrated schemas: the hourly
 * housekeeping and privacy's per-category runs, with and without held users.
 * A rule that names a wrong column fails only when it runs, hours later.
 */
describe('retention rules of every service run against their schemas', () => {
  let world: PlatformWorld;

  beforeAll(async () => {
    world = await startPlatformWorld({ privacy: false });
  });

  afterAll(async () => {
    await world?.close();
  });

  it.each(['identity', 'chat', 'billing', 'notify'] as const)('%s', async (name) => {
    const app = world.services[name].app;
    const hourly = await app.get(AgeRetentionService).purgeExpired();
    expect(Object.values(hourly).every((n) => Number.isInteger(n))).toBe(true);

    const categories = categoriesOf(name).map((c) => c.category);
    expect(categories.length).toBeGreaterThan(0);
    // A declared category goes only in privacy's runs (compliance's period, legal holds), never by the hourly housekeeping:
    // no hourly rule touches a category's table, whatever the rule is named.
    const categoryTables = app.get<CategoryRetentionRule[]>(CATEGORY_RETENTION_RULES).map((r) => r.table);
    expect(categoryTables.length).toBeGreaterThan(0);
    expect(app.get<PurgeRule[]>(RETENTION_RULES).filter((r) => categoryTables.includes(r.table))).toEqual([]);
    for (const retentionDays of [null, 0, 3650]) {
      const held = '4b7c6a4e-9f1d-4c8e-b2a1-0d3e5f6a7b8c';
      // Nobody held; held everywhere; held in their private workspace only (a restriction of one workspace).
      for (const [heldUserIds, heldScopes] of [[[], []], [[held], []], [[held], [{ userId: held, scope: 'private' }]]] as const) {
        for (const dryRun of [true, false]) {
          const report = await world.rpc.call(privacyRetentionRpc(name), { categories: categories.map((category) => ({ category, retentionDays })), dryRun, heldUserIds: [...heldUserIds], heldScopes: [...heldScopes] });
          expect(report.results.map((r) => r.category)).toEqual(categories);
        }
      }
    }
  });

  it('billing forgets an erasure mark after 30 days: it only bridges the time until identity deletes the account', async () => {
    await world.env.sql(`INSERT INTO billing.erased_subjects (alias, erased_at) VALUES ('erased-00000000000000aa', now() - interval '31 days'), ('erased-00000000000000bb', now() - interval '29 days')`);
    await world.services.billing.app.get(AgeRetentionService).purgeExpired();
    const left = await world.env.sql<{ alias: string }>(`SELECT alias FROM billing.erased_subjects WHERE alias LIKE 'erased-00000000000000%' ORDER BY alias`);
    expect(left.map((r) => r.alias)).toEqual(['erased-00000000000000bb']);
  });
});
