import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { billingService } from '@ally/billing';
import { chatService } from '@ally/chat';
import { notifyService } from '@ally/notify';
import { migrate } from '@ally/platform';
import { createTestEnv, type TestEnv } from '@ally/testing';

/** A service that refuses to start gives back what it opened: a process manager restarting it must not pile up connections. */
describe('a service that fails while starting', () => {
  let env: TestEnv;
  const backendsOf = async (service: string) =>
    (await env.sql<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1`, [`${env.runId}_${service}`]))[0].n;

  beforeAll(async () => {
    env = await createTestEnv();
  });

  afterAll(async () => {
    await env?.close();
  });

  it.each([
    ['chat', chatService, { MODEL_CATALOG_FILE: 'services/chat/config/no-such-catalog.json' }],
    ['billing', billingService, { PLANS_FILE: 'services/billing/config/no-such-plans.json' }],
  ] as const)('%s with a config file that is not there leaves no database connection behind', async (name, def, overrides) => {
    await expect(env.start(def, overrides)).rejects.toThrow();
    expect(await backendsOf(name)).toBe(0);
  });

  it.each([
    ['chat', chatService],
    ['billing', billingService],
    ['notify', notifyService],
  ] as const)("%s migrates with the database settings alone, as an operator's one-shot migrate step runs it (no catalog, plans or vendor keys)", async (name, def) => {
    const { DATABASE_URL, DATABASE_ADMIN_URL } = env.envFor(def);
    await expect(migrate(def, { NODE_ENV: 'production', DATABASE_URL, DATABASE_ADMIN_URL })).resolves.toEqual(expect.any(Array));
    expect(await env.sql(`SELECT 1 FROM information_schema.schemata WHERE schema_name = $1`, [name])).toHaveLength(1);
  });
});
