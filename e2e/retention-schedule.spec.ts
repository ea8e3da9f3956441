import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { IdentityRpc, PrivacyRpc } from '@ally/contracts';
import { RETENTION_RUN_LOCK, RetentionSchedule } from '@ally/privacy';
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
    // The one whose process died reads failed, and says why.
    const [dead] = await env.sql(`SELECT status, errors FROM privacy.retention_runs WHERE status <> 'completed' AND created_at < now() - interval '90 minutes' AND created_at > now() - interval '150 minutes'`);
    expect(dead).toMatchObject({ status: 'failed', errors: [{ service: 'privacy', error: expect.stringContaining('ended before it finished') }] });
    const run = await rpc.call(PrivacyRpc.getRetentionRun, { id: started[0]! }, { actor: compliance });
    expect(run).toMatchObject({ status: 'completed', dryRun: false, trigger: 'schedule' });
    expect(run.results).toContainEqual({ service: 'identity', category: 'login-audit', affected: 1 });

    const audit = await env.sql<{ user_id: string }>(`SELECT user_id FROM identity.login_audit WHERE ip = '203.0.113.7'`);
    expect(audit).toEqual([{ user_id: held.user.id }]);
    // Not due again within the period.
    expect(await schedule.runIfDue(24)).toBeUndefined();
  });

  it('leaves a run alone while its process lives, however long it takes, and fails it once that process is gone', async () => {
    const { env, rpc } = world;
    const schedule = world.services.privacy!.app.get(RetentionSchedule);
    const compliance = { userId: '00000000-0000-4000-8000-00000000c0c0', platformRoles: ['compliance' as const] };
    // The last full run was two days ago; one started three hours ago is still at work in another process.
    await env.sql(`UPDATE privacy.retention_runs SET created_at = created_at - interval '2 days'`);
    const [{ id }] = await env.sql<{ id: string }>(
      `INSERT INTO privacy.retention_runs (id, status, dry_run, categories, trigger, created_at, started_at)
         VALUES (gen_random_uuid(), 'running', false, NULL, 'schedule', now() - interval '3 hours', now() - interval '3 hours') RETURNING id`,
    );
    const worker = await env.connect();
    worker.on('error', () => undefined);
    await worker.query(`SELECT pg_advisory_lock($1, hashtext($2))`, [RETENTION_RUN_LOCK, id]);

    expect(await schedule.runIfDue(24)).toBeUndefined();
    expect(await rpc.call(PrivacyRpc.getRetentionRun, { id }, { actor: compliance })).toMatchObject({ status: 'running', finishedAt: null });

    // The worker's process is killed: its connection, and with it the lock, goes.
    const [{ pid }] = (await worker.query(`SELECT pg_backend_pid() AS pid`)).rows;
    await env.sql(`SELECT pg_terminate_backend($1)`, [pid]);
    await worker.end().catch(() => undefined);
    for (let i = 0; i < 100 && (await env.sql(`SELECT 1 FROM pg_stat_activity WHERE pid = $1`, [pid])).length; i++) await new Promise((r) => setTimeout(r, 20));

    const abandoned = await rpc.call(PrivacyRpc.getRetentionRun, { id }, { actor: compliance });
    expect(abandoned).toMatchObject({ status: 'failed', errors: [{ service: 'privacy', error: expect.stringContaining('ended before it finished') }] });
    expect(abandoned.finishedAt).not.toBeNull();
    const next = await schedule.runIfDue(24);
    expect(next).toBeDefined();
    expect(await rpc.call(PrivacyRpc.getRetentionRun, { id: next! }, { actor: compliance })).toMatchObject({ status: 'completed' });
    // One entry per run that was abandoned (the first test's and this one), however often they were looked at.
    const audit = await env.sql(`SELECT details FROM privacy.audit_log WHERE action = 'retention-run.abandoned'`);
    expect(audit).toHaveLength(2);
    expect(audit.map((a) => a.details.runId)).toContain(id);
  });

  it('fails a run compliance started whose process ended before it began (queued for good otherwise)', async () => {
    const { env, rpc } = world;
    const compliance = { userId: '00000000-0000-4000-8000-00000000c0c0', platformRoles: ['compliance' as const] };
    const [{ id }] = await env.sql<{ id: string }>(
      `INSERT INTO privacy.retention_runs (id, status, dry_run, categories, trigger, created_at) VALUES (gen_random_uuid(), 'queued', true, NULL, 'compliance', now() - interval '10 minutes') RETURNING id`,
    );
    expect(await rpc.call(PrivacyRpc.getRetentionRun, { id }, { actor: compliance })).toMatchObject({ status: 'failed', finishedAt: expect.any(String) });
  });
});
