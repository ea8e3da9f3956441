import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes, randomUUID } from 'node:crypto';
import { MAX_CONSENT_DECISIONS_PER_DAY, PrivacyRpc, type Actor } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { AgeRetentionService } from '@ally/platform';
import { createTestEnv, lastEvent, waitFor, type RunningService, type TestEnv } from '@ally/testing';
import { privacyService } from '../src/privacy.service.js';
import { OwnRetention } from '../src/retention/own-retention.js';
import { RetentionRunsService } from '../src/retention/retention-runs.service.js';
import { FakeServices } from './fake-services.js';

const compliance: Actor = { userId: randomUUID(), platformRoles: ['compliance'] };
const DAY = 86_400_000;

describe('retention policies, runs and legal holds', () => {
  let env: TestEnv;
  let privacy: RunningService;
  let rpc: RpcClient;
  let fakes: FakeServices;

  beforeAll(async () => {
    env = await createTestEnv();
    privacy = await env.start(privacyService, { PRIVACY_POLL_MS: '50', PRIVACY_KEK: randomBytes(32).toString('base64'), RETENTION_RUNNER: 'in-process' });
    rpc = new RpcClient(await env.nats(), env.prefix);
    await rpc.connect();
    fakes = new FakeServices(await env.nats(), env.prefix).listen(['identity', 'chat', 'billing', 'notify'], ['retention']).listen(['identity'], ['subject']);
  });

  afterAll(async () => {
    fakes?.close();
    await rpc?.close();
    await env?.close();
  });

  const finished = (id: string) =>
    waitFor(async () => {
      const run = await rpc.call(PrivacyRpc.getRetentionRun, { id }, { actor: compliance });
      return run.status === 'completed' || run.status === 'failed' ? run : undefined;
    }, `retention run ${id}`);

  it('lists a policy per declared category with the defaults from contracts, and audits a change by compliance', async () => {
    const { data } = await rpc.call(PrivacyRpc.listRetentionPolicies, {}, { actor: compliance });
    expect(data.find((p) => p.category === 'login-audit')).toMatchObject({ service: 'identity', retentionDays: 30, defaultRetentionDays: 30, updatedBy: null });
    expect(data.find((p) => p.category === 'invoices')).toMatchObject({ service: 'billing', retentionDays: 3653, basis: 'legal obligation (Art. 6(1)(c) GDPR)' });
    expect(data.find((p) => p.category === 'consent-records')).toMatchObject({ service: 'privacy', retentionDays: 730 });

    const changed = await rpc.call(PrivacyRpc.updateRetentionPolicies, { service: 'identity', category: 'login-audit', retentionDays: 14 }, { actor: compliance });
    expect(changed.data.find((p) => p.category === 'login-audit')).toMatchObject({ retentionDays: 14, defaultRetentionDays: 30, updatedBy: compliance.userId });
    const [entry] = await env.sql(`SELECT * FROM privacy.audit_log WHERE action = 'retention-policy.updated' ORDER BY seq DESC LIMIT 1`);
    expect(entry).toMatchObject({ actor: `staff:${compliance.userId}`, details: { category: 'login-audit', from: { retentionDays: 30 }, to: { retentionDays: 14 } } });
    // The register says the period in force, in the number and the words alike.
    const reg = await rpc.call(PrivacyRpc.processingActivities, { format: 'json' }, { actor: compliance });
    expect((reg as { activities: { category: string }[] }).activities.find((a) => a.category === 'login-audit')).toMatchObject({
      retentionDays: 14,
      retention: '14 days (set by the compliance team; by default: deleted after 30 days)',
    });

    await expect(rpc.call(PrivacyRpc.updateRetentionPolicies, { service: 'billing', category: 'invoices', retentionDays: 365 }, { actor: compliance })).rejects.toMatchObject({ status: 422 });
    await expect(rpc.call(PrivacyRpc.updateRetentionPolicies, { service: 'chat', category: 'no-such-thing', retentionDays: 5 }, { actor: compliance })).rejects.toMatchObject({ status: 400 });
    await expect(rpc.call(PrivacyRpc.listRetentionPolicies, {}, { actor: { userId: randomUUID(), platformRoles: [] } })).rejects.toMatchObject({ status: 403 });
  });

  it('counts a period stored under older rules as the nearest one allowed now: never below the legal minimum, never above the policy', async () => {
    await env.sql(
      `INSERT INTO privacy.retention_policies (service, category, retention_days, basis, updated_at, updated_by) VALUES
         ('billing', 'invoices', 2000, 'legal obligation (Art. 6(1)(c) GDPR)', now(), $1), ('notify', 'delivery-log', 100000, 'x', now(), $1)
       ON CONFLICT (service, category) DO UPDATE SET retention_days = EXCLUDED.retention_days`,
      [compliance.userId],
    );
    const { data } = await rpc.call(PrivacyRpc.listRetentionPolicies, {}, { actor: compliance });
    const mailLog = data.find((p) => p.service === 'notify' && p.category === 'delivery-log')!;
    expect(data.find((p) => p.category === 'invoices')).toMatchObject({ retentionDays: 2922 });
    expect(mailLog.retentionDays).toBe(mailLog.defaultRetentionDays);
    await env.sql(`DELETE FROM privacy.retention_policies WHERE (service, category) IN (('billing', 'invoices'), ('notify', 'delivery-log'))`);
  });

  it('refuses a day count for a category kept while something exists, naming the field, in one policy or in a list', async () => {
    const update = (input: unknown) => rpc.call(PrivacyRpc.updateRetentionPolicies, input, { actor: compliance });
    for (const [service, category] of [['identity', 'account'], ['identity', 'memberships'], ['notify', 'suppression-list']]) {
      await expect(update({ service, category, retentionDays: 1 })).rejects.toMatchObject({ status: 400, extra: { errors: [{ field: 'retentionDays', message: expect.stringMatching(/^must be null/) }] } });
    }
    await expect(update([{ service: 'identity', category: 'sessions', retentionDays: 20 }, { service: 'identity', category: 'account', retentionDays: 1 }])).rejects.toMatchObject({
      status: 400,
      extra: { errors: [{ field: '1.retentionDays' }] },
    });
    await expect(update([{ service: 'chat', category: 'no-such-thing', retentionDays: 5 }])).rejects.toMatchObject({ status: 400, extra: { errors: [{ field: '0.category' }] } });
    await expect(update([{ service: 'identity', category: 'sessions', retentionDays: 20 }, { service: 'identity', category: 'sessions', retentionDays: 25 }])).rejects.toMatchObject({
      status: 400,
      extra: { errors: [{ field: '1.category', message: expect.stringContaining('second time') }] },
    });
    const { data } = await rpc.call(PrivacyRpc.listRetentionPolicies, {}, { actor: compliance });
    expect(data.find((p) => p.category === 'account')).toMatchObject({ retentionDays: null, updatedBy: null });
    expect(data.find((p) => p.category === 'sessions')).toMatchObject({ retentionDays: 30, updatedBy: null });

    // null stays possible; revoked API keys and chat history take a period although they have none by default.
    const changed = await update([{ service: 'identity', category: 'account', retentionDays: null }, { service: 'identity', category: 'api-keys', retentionDays: 30 }, { service: 'chat', category: 'chat-history', retentionDays: 365 }]);
    expect(changed.data.find((p) => p.category === 'api-keys')).toMatchObject({ retentionDays: 30, defaultRetentionDays: null });
    expect(changed.data.find((p) => p.category === 'chat-history')).toMatchObject({ retentionDays: 365 });
    await update([{ service: 'identity', category: 'api-keys', retentionDays: null }, { service: 'chat', category: 'chat-history', retentionDays: null }]);
  });

  it('asks every service to purge by the policies in force, skipping held users, and keeps their counts', async () => {
    const held = randomUUID();
    await expect(rpc.call(PrivacyRpc.createLegalHold, { userId: held, reason: 'Steuer\u001b[31mprüfung' }, { actor: compliance })).rejects.toMatchObject({ status: 400 });
    const hold = await rpc.call(PrivacyRpc.createLegalHold, { userId: held, reason: 'tax audit 2026' }, { actor: compliance });
    fakes.on('identity', 'retention', (input) => ({ service: 'identity', results: input.categories.map((c: { category: string }) => ({ category: c.category, affected: c.category === 'login-audit' ? 7 : 0 })) }));
    const started = await rpc.call(PrivacyRpc.startRetentionRun, { dryRun: false }, { actor: compliance });
    expect(started).toMatchObject({ status: expect.stringMatching(/queued|running|completed/), launchedAs: 'in-process', trigger: 'compliance' });
    const run = await finished(started.id);
    expect(run.status).toBe('completed');
    expect(run.results).toContainEqual({ service: 'identity', category: 'login-audit', affected: 7 });
    const call = fakes.callsTo('identity', 'retention').at(-1)!;
    expect(call.input).toMatchObject({ dryRun: false, runId: started.id, heldUserIds: [held] });
    expect(call.input.categories).toContainEqual({ category: 'login-audit', retentionDays: 14 });
    expect(call.input.categories).toContainEqual({ category: 'account', retentionDays: null });

    await rpc.call(PrivacyRpc.releaseLegalHold, { id: hold.id }, { actor: compliance });
    const next = await finished((await rpc.call(PrivacyRpc.startRetentionRun, { dryRun: true, categories: ['login-audit'] }, { actor: compliance })).id);
    const again = fakes.callsTo('identity', 'retention').at(-1)!;
    expect(again.input).toMatchObject({ dryRun: true, heldUserIds: [], categories: [{ category: 'login-audit', retentionDays: 14 }] });
    expect(fakes.callsTo('chat', 'retention').at(-1)!.input.runId).not.toBe(next.id);
    expect(next.results.map((r) => r.category)).toEqual(['login-audit']);
    const finishedEvent = await lastEvent(env, 'privacy.retention-run.finished', (e: any) => e.data.runId === next.id);
    expect(finishedEvent.data).toMatchObject({ dryRun: true, status: 'completed', affected: 7 });
  });

  it('a legal hold placed while a run deletes answers once the slice under way is done, and every later slice spares its subject', async () => {
    const late = randomUUID();
    let finishSlice!: () => void;
    const sliceDone = new Promise<void>((resolve) => (finishSlice = resolve));
    let slices = 0;
    const before = fakes.handlerOf('identity', 'retention');
    // identity deletes in slices: the first one waits for the test, and says there is more to delete.
    fakes.on('identity', 'retention', async (input) => {
      const first = ++slices === 1;
      if (first) await sliceDone;
      return { service: 'identity', results: input.categories.map((c: { category: string }) => ({ category: c.category, affected: first ? 5 : 1, ...(first ? { complete: false } : {}) })) };
    });
    try {
      const started = await rpc.call(PrivacyRpc.startRetentionRun, { dryRun: false, categories: ['login-audit'] }, { actor: compliance });
      await waitFor(async () => (slices === 1 ? true : undefined), 'the first slice');
      let placed = false;
      const hold = rpc.call(PrivacyRpc.createLegalHold, { userId: late, reason: 'claim filed today' }, { actor: compliance }).then((h) => ((placed = true), h));
      // The hold waits for the slice under way (it may still be deleting the subject's rows) ...
      await waitFor(async () => ((await env.sql(`SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`)).length ? true : undefined), 'the hold to wait');
      expect(placed).toBe(false);
      finishSlice();
      const { id: holdId } = await hold;
      // ... and the next slice, which takes up the rest, spares the subject.
      const run = await finished(started.id);
      const calls = fakes.callsTo('identity', 'retention').filter((c) => c.input.runId === started.id);
      expect(calls.map((c) => c.input.heldUserIds.includes(late))).toEqual([false, true]);
      expect(run).toMatchObject({ status: 'completed', results: [{ service: 'identity', category: 'login-audit', affected: 6 }] });
      await rpc.call(PrivacyRpc.releaseLegalHold, { id: holdId }, { actor: compliance });
    } finally {
      finishSlice();
      if (before) fakes.on('identity', 'retention', before);
      else fakes.off('identity', 'retention');
    }
  });

  it('counts what the slices before a failing one deleted', async () => {
    const before = fakes.handlerOf('identity', 'retention');
    let slices = 0;
    fakes.on('identity', 'retention', (input) =>
      ++slices === 1
        ? { service: 'identity', results: input.categories.map((c: { category: string }) => ({ category: c.category, affected: 4, complete: false })) }
        : { problem: { type: 'about:blank', title: 'Service Unavailable', status: 503, detail: 'database down' } },
    );
    try {
      const run = await finished((await rpc.call(PrivacyRpc.startRetentionRun, { dryRun: false, categories: ['login-audit'] }, { actor: compliance })).id);
      expect(run).toMatchObject({ status: 'failed', errors: [{ service: 'identity', error: 'database down' }], results: [{ service: 'identity', category: 'login-audit', affected: 4 }] });
    } finally {
      if (before) fakes.on('identity', 'retention', before);
      else fakes.off('identity', 'retention');
    }
  });

  it('a replica stopped during its run ends the run at the next slice, counted and said why, instead of leaving it running', async () => {
    const before = fakes.handlerOf('identity', 'retention');
    let slices = 0;
    // Always more to delete: without the stop the run would go on to its time limit.
    fakes.on('identity', 'retention', async (input) => {
      slices++;
      await new Promise((r) => setTimeout(r, 50));
      return { service: 'identity', results: input.categories.map((c: { category: string }) => ({ category: c.category, affected: 3, complete: false })) };
    });
    const replica = await env.start(privacyService, { PRIVACY_POLL_MS: '50', PRIVACY_KEK: randomBytes(32).toString('base64'), RETENTION_RUNNER: 'in-process' });
    try {
      const started = await replica.app.get(RetentionRunsService).start(compliance, { dryRun: false, categories: ['login-audit'] });
      await waitFor(async () => (slices >= 2 ? true : undefined), 'two slices');
      const stopping = Date.now();
      await env.stop(replica);
      expect(Date.now() - stopping).toBeLessThan(3_000);
      const run = await rpc.call(PrivacyRpc.getRetentionRun, { id: started.id }, { actor: compliance });
      expect(run).toMatchObject({ status: 'failed', errors: [{ service: 'identity', error: expect.stringContaining('privacy was stopped during the run') }] });
      expect(run.results).toEqual([{ service: 'identity', category: 'login-audit', affected: 3 * slices }]);
    } finally {
      if (before) fakes.on('identity', 'retention', before);
      else fakes.off('identity', 'retention');
    }
  });

  it('pages through legal holds placed within one millisecond without losing any', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push((await rpc.call(PrivacyRpc.createLegalHold, { userId: randomUUID(), reason: `Sammelklage ${i}` }, { actor: compliance })).id);
    // As a batch placed at once would be: microseconds apart, one millisecond in the cursor.
    for (const [i, id] of ids.entries()) await env.sql(`UPDATE privacy.legal_holds SET created_at = '2031-01-01T10:00:00.1234Z'::timestamptz + make_interval(secs => $2 * 0.00001) WHERE id = $1`, [id, i]);
    const seen: string[] = [];
    for (let cursor: string | undefined, pages = 0; pages < 10; pages++) {
      const page = await rpc.call(PrivacyRpc.listLegalHolds, { limit: 1, ...(cursor ? { cursor } : {}) }, { actor: compliance });
      seen.push(...page.data.map((h) => h.id));
      if (!page.nextCursor) break;
      cursor = page.nextCursor;
    }
    expect(seen.filter((id) => ids.includes(id)).sort()).toEqual([...ids].sort());
    for (const id of ids) await rpc.call(PrivacyRpc.releaseLegalHold, { id }, { actor: compliance });
  });

  it('tells the services which users a restriction holds in some workspaces only, and holds everywhere a user also restricted in all', async () => {
    const [scoped, both, org]: string[] = [randomUUID(), randomUUID(), randomUUID()];
    for (const [user, scope] of [[scoped, 'private'], [scoped, org], [both, org], [both, 'all']]) {
      await env.sql(`INSERT INTO privacy.requests (id, user_id, subject_hash, type, scope, status, due_at) VALUES ($1, $2, 'h', 'restriction', $3, 'completed', now())`, [randomUUID(), user, scope]);
    }
    await finished((await rpc.call(PrivacyRpc.startRetentionRun, { dryRun: true, categories: ['chat-history'] }, { actor: compliance })).id);
    const { input } = fakes.callsTo('chat', 'retention').at(-1)!;
    expect(input.heldUserIds).toEqual(expect.arrayContaining([scoped, both]));
    expect(input.heldScopes.filter((h: { userId: string }) => [scoped, both].includes(h.userId))).toEqual(
      expect.arrayContaining([
        { userId: scoped, scope: 'private' },
        { userId: scoped, scope: org },
      ]),
    );
    expect(input.heldScopes.filter((h: { userId: string }) => [scoped, both].includes(h.userId))).toHaveLength(2);
    await env.sql(`UPDATE privacy.requests SET took_effect_at = now() WHERE user_id = ANY($1::uuid[])`, [[scoped, both]]);
  });

  it("purges privacy's own expired records exactly, and a dry run only counts them", async () => {
    const keep = randomUUID();
    const hold = await rpc.call(PrivacyRpc.createLegalHold, { userId: keep, reason: 'litigation hold' }, { actor: compliance });
    // Consent records: 3 past their 2 years, 2 fresh.
    for (const [i, ageDays] of [800, 900, 731, 10, 700].entries()) {
      await env.sql(`INSERT INTO privacy.consents (id, subject_id, purpose, granted, policy_version, source, recorded_at, expires_at) VALUES ($1, $2, 'analytics', true, 'v1', 'given', $3, $3::timestamptz + interval '2 years')`, [
        randomUUID(),
        `subject-seeded-${i}-xxxxxxxx`,
        new Date(Date.now() - ageDays * DAY),
      ]);
    }
    // Older than 730 days yet still valid (two years that span a 29 February are 731 days): its proof stays.
    await env.sql(`INSERT INTO privacy.consents (id, subject_id, purpose, granted, policy_version, source, recorded_at, expires_at) VALUES ($1, 'subject-seeded-leap-xxxxxxxx', 'analytics', true, 'v1', 'given', now() - interval '730 days 12 hours', now() + interval '12 hours')`, [randomUUID()]);
    // Export packages: two old ones past their download date (one of a held user), one fresh, and one as old whose
    // subject was given a later download date (PRIVACY_EXPORT_TTL_DAYS longer than the category's period): it stays.
    const givenLonger = randomUUID();
    for (const [user, ageDays, downloadDays] of [[randomUUID(), 9, 7], [keep, 9, 7], [randomUUID(), 1, 7], [givenLonger, 9, 14]] as const) {
      const id = randomUUID();
      await env.sql(`INSERT INTO privacy.requests (id, user_id, subject_hash, type, scope, status, due_at) VALUES ($1, $2, 'h', 'access', 'all', 'completed', now())`, [id, user]);
      const created = new Date(Date.now() - ageDays * DAY);
      await env.sql(`INSERT INTO privacy.export_packages (request_id, user_id, sealed, size, created_at, expires_at) VALUES ($1, $2, '\\x00', 1, $3, $4)`, [id, user, created, new Date(created.getTime() + downloadDays * DAY)]);
    }
    const dry = await finished((await rpc.call(PrivacyRpc.startRetentionRun, { dryRun: true, categories: ['consent-records', 'export-packages'] }, { actor: compliance })).id);
    expect(dry.results).toEqual([
      { service: 'privacy', category: 'consent-records', affected: 3 },
      { service: 'privacy', category: 'export-packages', affected: 1 },
    ]);
    expect((await env.sql(`SELECT count(*)::int AS n FROM privacy.consents`))[0].n).toBe(6);

    const real = await finished((await rpc.call(PrivacyRpc.startRetentionRun, { dryRun: false, categories: ['consent-records', 'export-packages'] }, { actor: compliance })).id);
    expect(real.results.map((r) => r.affected)).toEqual([3, 1]);
    expect((await env.sql(`SELECT count(*)::int AS n FROM privacy.consents`))[0].n).toBe(3);
    // Shortened to a year, consents last a year: those recorded 700 and 730 days ago lapse with their records, the fresh one stays.
    await rpc.call(PrivacyRpc.updateRetentionPolicies, { service: 'privacy', category: 'consent-records', retentionDays: 365 }, { actor: compliance });
    const shortened = await finished((await rpc.call(PrivacyRpc.startRetentionRun, { dryRun: false, categories: ['consent-records'] }, { actor: compliance })).id);
    expect(shortened.results).toEqual([{ service: 'privacy', category: 'consent-records', affected: 2 }]);
    expect((await env.sql(`SELECT count(*)::int AS n FROM privacy.consents`))[0].n).toBe(1);
    await rpc.call(PrivacyRpc.updateRetentionPolicies, { service: 'privacy', category: 'consent-records', retentionDays: 730 }, { actor: compliance });
    expect((await env.sql(`SELECT user_id FROM privacy.export_packages`)).map((r) => r.user_id)).toContain(keep);

    await rpc.call(PrivacyRpc.releaseLegalHold, { id: hold.id }, { actor: compliance });
    const after = await finished((await rpc.call(PrivacyRpc.startRetentionRun, { dryRun: false, categories: ['export-packages'] }, { actor: compliance })).id);
    expect(after.results).toEqual([{ service: 'privacy', category: 'export-packages', affected: 1 }]);
    expect((await env.sql(`SELECT user_id FROM privacy.export_packages`)).map((r) => r.user_id)).toContain(givenLonger);

    // A legal hold is kept while active and 3 years after its release, then it goes; an active one never does.
    const old = await rpc.call(PrivacyRpc.createLegalHold, { userId: randomUUID(), reason: 'settled long ago' }, { actor: compliance });
    const active = await rpc.call(PrivacyRpc.createLegalHold, { userId: randomUUID(), reason: 'still open' }, { actor: compliance });
    await rpc.call(PrivacyRpc.releaseLegalHold, { id: old.id }, { actor: compliance });
    await env.sql(`UPDATE privacy.legal_holds SET released_at = now() - interval '1100 days', created_at = now() - interval '2000 days' WHERE id = $1`, [old.id]);
    await env.sql(`UPDATE privacy.legal_holds SET created_at = now() - interval '2000 days' WHERE id = $1`, [active.id]);
    const holds = await finished((await rpc.call(PrivacyRpc.startRetentionRun, { dryRun: false, categories: ['legal-holds'] }, { actor: compliance })).id);
    expect(holds.results).toEqual([{ service: 'privacy', category: 'legal-holds', affected: 1 }]);
    expect((await env.sql<{ id: string }>(`SELECT id FROM privacy.legal_holds WHERE id = ANY($1::uuid[])`, [[old.id, active.id, hold.id]])).map((r) => r.id).sort()).toEqual([active.id, hold.id].sort());

    // A request goes 3 years after the last thing that happened to it: a restriction completed 4 years ago and
    // lifted last week keeps its decision; an access request completed 4 years ago goes.
    const [lifted, answered] = [randomUUID(), randomUUID()];
    const longAgo = `now() - interval '1500 days'`;
    await env.sql(
      `INSERT INTO privacy.requests (id, user_id, subject_hash, type, scope, status, due_at, created_at, completed_at, updated_at, decision, decided_at, takes_effect_at, took_effect_at)
       VALUES ($1, $2, 'h', 'restriction', 'all', 'completed', ${longAgo}, ${longAgo}, ${longAgo}, ${longAgo}, 'lift', now() - interval '10 days', now() - interval '7 days', now() - interval '7 days')`,
      [lifted, randomUUID()],
    );
    await env.sql(
      `INSERT INTO privacy.requests (id, user_id, subject_hash, type, scope, status, due_at, created_at, completed_at, updated_at) VALUES ($1, $2, 'h', 'access', 'all', 'completed', ${longAgo}, ${longAgo}, ${longAgo}, ${longAgo})`,
      [answered, randomUUID()],
    );
    const requests = await finished((await rpc.call(PrivacyRpc.startRetentionRun, { dryRun: false, categories: ['data-subject-requests'] }, { actor: compliance })).id);
    expect(requests.results).toEqual([{ service: 'privacy', category: 'data-subject-requests', affected: 1 }]);
    expect((await env.sql<{ id: string }>(`SELECT id FROM privacy.requests WHERE id = ANY($1::uuid[])`, [[lifted, answered]])).map((r) => r.id)).toEqual([lifted]);
  });

  it("purges privacy's own backlog slice by slice: no batch starts after the slice's end, and the next slice goes on", async () => {
    const own = privacy.app.get(OwnRetention);
    await env.sql(
      `INSERT INTO privacy.consents (id, subject_id, purpose, granted, policy_version, source, recorded_at, expires_at)
       SELECT gen_random_uuid(), 'subject-backlog-' || n, 'analytics', true, 'v1', 'given', now() - interval '800 days', now() - interval '70 days' FROM generate_series(1, 1500) n`,
    );
    expect(await own.purge('consent-records', 730, [], false, [], Date.now() - 1)).toEqual({ affected: 0, complete: false });
    expect(await own.purge('consent-records', 730, [], false, [], Date.now() + 60_000)).toEqual({ affected: 1500, complete: true });
  });

  it("forgets a retention run's record 3 years after it finished, in the hourly housekeeping", async () => {
    const [old, recent] = [randomUUID(), randomUUID()];
    await env.sql(
      `INSERT INTO privacy.retention_runs (id, status, dry_run, trigger, started_by, finished_at) VALUES ($1, 'completed', false, 'compliance', 'staff:x', now() - interval '3 years 1 day'), ($2, 'completed', false, 'compliance', 'staff:x', now() - interval '2 years')`,
      [old, recent],
    );
    await privacy.app.get(AgeRetentionService).purgeExpired();
    expect((await env.sql<{ id: string }>(`SELECT id FROM privacy.retention_runs WHERE id = ANY($1::uuid[])`, [[old, recent]])).map((r) => r.id)).toEqual([recent]);
  });

  it('deletes erasure tombstones 3 years after the erasure, as the requests they document, unless a legal hold names the subject', async () => {
    expect((await rpc.call(PrivacyRpc.listRetentionPolicies, {}, { actor: compliance })).data.find((p) => p.category === 'erasure-tombstones')).toMatchObject({ service: 'privacy', retentionDays: 3 * 365 + 1 });
    const hold = await rpc.call(PrivacyRpc.createLegalHold, { userId: randomUUID(), reason: 'claim after erasure' }, { actor: compliance });
    const [{ subject_hash: heldHash }] = await env.sql(`SELECT subject_hash FROM privacy.legal_holds WHERE id = $1`, [hold.id]);
    const tombstone = (hash: string, ageDays: number) =>
      env.sql(`INSERT INTO privacy.tombstones (subject_hash, request_id, scope, erased_at, affected) VALUES ($1, $2, 'all', now() - make_interval(days => $3), '{}')`, [hash, randomUUID(), ageDays]);
    await tombstone('tomb-old', 1100);
    await tombstone('tomb-fresh', 1000);
    await tombstone(heldHash, 1100);
    const dry = await finished((await rpc.call(PrivacyRpc.startRetentionRun, { dryRun: true, categories: ['erasure-tombstones'] }, { actor: compliance })).id);
    expect(dry.results).toEqual([{ service: 'privacy', category: 'erasure-tombstones', affected: 1 }]);
    const real = await finished((await rpc.call(PrivacyRpc.startRetentionRun, { dryRun: false, categories: ['erasure-tombstones'] }, { actor: compliance })).id);
    expect(real.results).toEqual([{ service: 'privacy', category: 'erasure-tombstones', affected: 1 }]);
    expect((await env.sql<{ subject_hash: string }>(`SELECT subject_hash FROM privacy.tombstones`)).map((r) => r.subject_hash).sort()).toEqual([heldHash, 'tomb-fresh'].sort());
    await rpc.call(PrivacyRpc.releaseLegalHold, { id: hold.id }, { actor: compliance });
  });

  it('reports a service that does not answer as a failed part of the run', async () => {
    fakes.on('chat', 'retention', () => ({ problem: { type: 'about:blank', title: 'Service Unavailable', status: 503, detail: 'database down' } }));
    const run = await finished((await rpc.call(PrivacyRpc.startRetentionRun, { dryRun: true, categories: ['chat-history', 'login-audit'] }, { actor: compliance })).id);
    expect(run.status).toBe('failed');
    expect(run.errors).toEqual([{ service: 'chat', error: 'database down' }]);
    expect(run.results).toContainEqual({ service: 'identity', category: 'login-audit', affected: 7 });
  });

  it('runs from the CLI command, as the CronJob does', async () => {
    const out = await privacyService.commands!['retention-run'](privacy.app, ['--dry-run', '--scheduled', '--categories', 'login-audit']);
    expect(out).toMatch(/^retention run [0-9a-f-]+: completed \(dry run: nothing deleted\)/);
    expect(out).toContain('identity/login-audit: 7');
    const [run] = await env.sql(`SELECT * FROM privacy.retention_runs ORDER BY created_at DESC LIMIT 1`);
    expect(run).toMatchObject({ trigger: 'schedule', dry_run: true, status: 'completed' });
  });

  it("starts the scheduled run once a run under way has finished, instead of giving the night's run up", async () => {
    const runs = privacy.app.get(RetentionRunsService);
    const busy = await runs.create('cli', { dryRun: true, categories: ['login-audit'] });
    const scheduled = runs.createWhenFree('schedule', { dryRun: true, categories: ['login-audit'] }, { everyMs: 100 });
    await new Promise((r) => setTimeout(r, 300));
    expect(await env.sql(`SELECT 1 FROM privacy.retention_runs WHERE trigger = 'schedule' AND status = 'queued'`)).toEqual([]);
    await runs.execute(busy);
    const id = await scheduled;
    expect(await env.sql(`SELECT trigger FROM privacy.retention_runs WHERE id = $1`, [id])).toEqual([{ trigger: 'schedule' }]);
    await runs.execute(id);
    // Not for ever: past its wait, the run under way is named.
    const again = await runs.create('cli', { dryRun: true, categories: ['login-audit'] });
    await expect(runs.createWhenFree('schedule', { dryRun: true }, { waitMs: 150, everyMs: 100 })).rejects.toMatchObject({ status: 409, runId: again });
    await runs.execute(again);
  });

  it('records consents per pseudonymous subject, with history, withdrawal and two years of validity', async () => {
    const subjectId = `anon-${randomUUID()}`;
    const given = await rpc.call(PrivacyRpc.recordConsent, { subjectId, purposes: { analytics: true, marketing: false }, policyVersion: '2024-09-18' }, { meta: { userAgent: 'Mozilla/5.0 test' } });
    expect(given.current).toEqual([
      expect.objectContaining({ purpose: 'analytics', granted: true, expired: false, policyVersion: '2024-09-18' }),
      expect.objectContaining({ purpose: 'marketing', granted: false }),
    ]);
    const years = (Date.parse(given.current[0].expiresAt) - Date.parse(given.current[0].recordedAt)) / (365.25 * DAY);
    expect(years).toBeCloseTo(2, 1);
    expect(given.history[0].userAgent).toBe('Mozilla/5.0 test');
    const withdrawn = await rpc.call(PrivacyRpc.withdrawConsents, { subjectId });
    expect(withdrawn.current.every((c) => !c.granted)).toBe(true);
    expect(withdrawn.history.map((h) => h.source)).toEqual(['withdrawal', 'given', 'given']);
    // Given again, then refused through the form: the refusal withdraws it, and is recorded so; refusing it once more is not.
    await rpc.call(PrivacyRpc.recordConsent, { subjectId, purposes: { analytics: true }, policyVersion: '2024-09-18' });
    await rpc.call(PrivacyRpc.recordConsent, { subjectId, purposes: { analytics: false }, policyVersion: '2024-09-18' });
    const refused = await rpc.call(PrivacyRpc.recordConsent, { subjectId, purposes: { analytics: false }, policyVersion: '2024-09-18' });
    expect(refused.history.slice(0, 3).map((h) => h.source)).toEqual(['given', 'withdrawal', 'given']);
    await expect(rpc.call(PrivacyRpc.getConsents, { subjectId: 'nobody-has-this-id-000' })).rejects.toMatchObject({ status: 404 });
    await expect(rpc.call(PrivacyRpc.recordConsent, { subjectId: 'lea@example.eu', purposes: { analytics: true }, policyVersion: 'v1' } as any)).rejects.toMatchObject({ status: 400 });
  });

  it("takes MAX_CONSENT_DECISIONS_PER_DAY decisions of one subject a day (the route needs no login), and always its withdrawal", async () => {
    const subjectId = `anon-${randomUUID()}`;
    // A day's worth, as rows (each decision is one): the next form is refused, the withdrawal is not.
    await rpc.call(PrivacyRpc.recordConsent, { subjectId, purposes: { analytics: true }, policyVersion: 'v1' });
    await env.sql(
      `INSERT INTO privacy.consents (id, subject_id, purpose, granted, policy_version, source, recorded_at, expires_at)
       SELECT gen_random_uuid(), $1, 'analytics', n % 2 = 0, 'v1', 'given', now() - interval '1 minute', now() + interval '2 years' FROM generate_series(1, $2) n`,
      [subjectId, MAX_CONSENT_DECISIONS_PER_DAY - 1],
    );
    await expect(rpc.call(PrivacyRpc.recordConsent, { subjectId, purposes: { analytics: true }, policyVersion: 'v1' })).rejects.toMatchObject({
      status: 409,
      extra: { type: 'https://ally.eu/problems/limit-reached' },
    });
    // A withdrawal sent as a form (the purpose set to false) is taken too, while the consent is in force; a refusal of one not given is not.
    await expect(rpc.call(PrivacyRpc.recordConsent, { subjectId, purposes: { analytics: false }, policyVersion: 'v1' })).resolves.toMatchObject({ current: [{ purpose: 'analytics', granted: false }] });
    await expect(rpc.call(PrivacyRpc.recordConsent, { subjectId, purposes: { analytics: false }, policyVersion: 'v1' })).rejects.toMatchObject({ status: 409 });
    // Recorded as the withdrawal it was; the withdrawal after it found nothing in force to withdraw.
    expect((await rpc.call(PrivacyRpc.withdrawConsents, { subjectId })).history[0]).toMatchObject({ source: 'withdrawal', granted: false });
    await env.sql(`UPDATE privacy.consents SET recorded_at = recorded_at - interval '1 day' WHERE subject_id = $1`, [subjectId]);
    await expect(rpc.call(PrivacyRpc.recordConsent, { subjectId, purposes: { analytics: true }, policyVersion: 'v2' })).resolves.toMatchObject({ subjectId });
  });

  it('builds the register of processing activities from contracts, as JSON and CSV', async () => {
    const reg = await rpc.call(PrivacyRpc.processingActivities, { format: 'json' }, { actor: compliance });
    if (!('activities' in reg)) throw new Error('expected JSON');
    expect(reg.controller.name).toBe('fellowork GmbH');
    const chat = reg.activities.find((a) => a.category === 'chat-history')!;
    expect(chat.recipients.map((r) => r.name).sort()).toEqual(['Hetzner Online GmbH', 'Microsoft Ireland Operations Limited', 'OpenAI Ireland Ltd']);
    expect(chat.recipients.find((r) => r.name === 'OpenAI Ireland Ltd')!.transferBasis.euEea).toMatch(/standard contractual clauses/);
    const billing = reg.activities.find((a) => a.category === 'invoices')!;
    expect(billing.recipients.find((r) => r.name === 'Stripe, Inc.')!.transferBasis.euEea).toMatch(/Data Privacy Framework/);
    expect(reg.activities.find((a) => a.category === 'delivery-log')!.recipients.map((r) => r.name)).toContain('Sendinblue GmbH (Brevo)');
    expect(reg.activities.find((a) => a.category === 'login-audit')!.retentionDays).toBe(14);
    // Every category an export holds is in the register: the link to a single sign-on provider too.
    expect(reg.activities.find((a) => a.category === 'sso-links')).toMatchObject({ service: 'identity', retentionDays: null });
    const csv = await rpc.call(PrivacyRpc.processingActivities, { format: 'csv' }, { actor: compliance });
    if (!('csv' in csv)) throw new Error('expected CSV');
    const lines = csv.csv.trim().split('\r\n');
    expect(lines[0]).toBe('service,category,description,purposes,legal basis,retention days,retention,data subjects,recipients and processors,transfer bases');
    expect(lines).toHaveLength(1 + reg.activities.length);
  });

  it('verifies the audit chain and names the first broken link after tampering', async () => {
    const ok = await privacyService.commands!['verify-audit'](privacy.app, []);
    expect(ok).toMatch(/^audit trail intact: \d+ entries/);
    const [{ n }] = await env.sql(`SELECT count(*)::int AS n FROM privacy.audit_log`);
    expect(n).toBeGreaterThan(5);
    await env.sql(`UPDATE privacy.audit_log SET details = '{"category":"login-audit","to":{"retentionDays":3650}}' WHERE seq = 3`);
    expect(await privacyService.commands!['verify-audit'](privacy.app, [])).toBe('audit trail BROKEN at entry 3: entry 3 was changed after it was written (2 entries before it check out)');
    await env.sql(`DELETE FROM privacy.audit_log WHERE seq <= 3`);
    expect(await privacyService.commands!['verify-audit'](privacy.app, [])).toMatch(/BROKEN at entry 1: entry 1 is missing/);
    process.exitCode = 0;
  });
});
