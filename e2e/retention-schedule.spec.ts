import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { IdentityRpc, PrivacyRpc } from '@ally/contracts';
import { RetentionSchedule } from '@ally/privacy';
import { startPlatformWorld, type PlatformWorld } from './platform-world.js';

const PASSWORD = 'Schwalben über dem Deich';

/**
 * Where no CronJob keeps the schedule (`npm start`), the privacy replicas start
 * the daily retention run themselves: once per period however many ask at
 * once, following the policies in force and sparing held users. It is the only
 * way a declared category (here identity's login audit) is purged.
 */
describe("privacy's own retention schedule", () => {
  let world: PlatformWorld;

  beforeAll(async () => {
    world = await startPlatformWorld();
  });

  afterAll(async () => {
    await world?.close();
  });

  it('runs once per period across concurrent replicas, purges past the period and keeps what a legal hold protects', async () => {
    const { env, rpc } = world;
    const register = (email: string) => rpc.call(IdentityRpc.register, { email, password: PASSWORD, firstName: 'Rita', lastName: 'Rahn' });
    const [free, held] = [await register('free@example.eu'), await register('held@example.eu')];
    for (const { user } of [free, held]) {
      await env.sql(`INSERT INTO identity.login_audit (user_id, ip, succeeded, method, occurred_at) VALUES ($1, '203.0.113.7', true, 'password', now() - interval '40 days')`, [user.id]);
    }
    const compliance = { userId: free.user.id, platformRoles: ['compliance' as const] };
    await rpc.call(PrivacyRpc.createLegalHold, { userId: held.user.id, reason: 'litigation 2026-17' }, { actor: compliance });

    const schedule = world.services.privacy!.app.get(RetentionSchedule);
    // A scheduled dry run, or one of a few categories (`retention-run --scheduled --dry-run`), deleted nothing else: the full run is still due.
    // So it is after a full run that failed (a service briefly down), or one whose process died two hours ago.
    await env.sql(
      `INSERT INTO privacy.retention_runs (id, status, dry_run, categories, trigger, created_at) VALUES
         (gen_random_uuid(), 'completed', true, NULL, 'schedule', now()),
         (gen_random_uuid(), 'completed', false, '["sessions"]', 'schedule', now()),
         (gen_random_uuid(), 'failed', false, NULL, 'schedule', now() - interval '3 hours'),
         (gen_random_uuid(), 'running', false, NULL, 'schedule', now() - interval '2 hours')`,
    );
    // Two replicas looking at the same moment: one run.
    const started = (await Promise.all([schedule.runIfDue(24), schedule.runIfDue(24)])).filter(Boolean);
    expect(started).toHaveLength(1);
    const run = await rpc.call(PrivacyRpc.getRetentionRun, { id: started[0]! }, { actor: compliance });
    expect(run).toMatchObject({ status: 'completed', dryRun: false, trigger: 'schedule' });
    expect(run.results).toContainEqual({ service: 'identity', category: 'login-audit', affected: 1 });

    const audit = await env.sql<{ user_id: string }>(`SELECT user_id FROM identity.login_audit WHERE ip = '203.0.113.7'`);
    expect(audit).toEqual([{ user_id: held.user.id }]);
    // Not due again within the period.
    expect(await schedule.runIfDue(24)).toBeUndefined();
  });
});
