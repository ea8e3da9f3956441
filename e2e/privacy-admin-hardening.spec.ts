import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { identityService } from '@ally/identity';
import { confirmEmail, lastEvent, waitFor, type HttpResult, type TestEnv } from '@ally/testing';
import { everyRow, startPlatformWorld, type PlatformWorld } from './platform-world.js';
import { expectProblem } from './problem-assertions.js';

const PASSWORD = 'Leuchtturm am Deich bei Ebbe';

/**
 * Privacy's edges found by probing the running platform: concurrent
 * compliance decisions, error answers that name the field, an export voided
 * by a later erasure, and requests that keep to their scope and leave
 * nothing of it behind.
 */
describe('privacy: decisions, error answers and voided exports', () => {
  let world: PlatformWorld;
  let env: TestEnv;
  let http: PlatformWorld['http'];

  beforeAll(async () => {
    world = await startPlatformWorld({ gateway: true });
    ({ env, http } = world);
  });

  afterAll(async () => {
    await world?.close();
  });

  const register = async (firstName: string, lastName: string) => {
    const email = `${firstName.toLowerCase()}-${randomUUID().slice(0, 8)}@example.eu`;
    const r = await http.post('/v1/auth/register', { email, password: PASSWORD, firstName, lastName, locale: 'de' });
    expect(r.status).toBe(201);
    return { email, ...(r.body as { user: { id: string }; accessToken: string }) };
  };
  const complianceToken = async () => {
    const cora = await register('Cora', 'Prüfer');
    await identityService.commands!['grant-role'](world.services.identity.app, [cora.email, 'compliance']);
    return (await http.post('/v1/auth/login', { email: cora.email, password: PASSWORD })).body.accessToken as string;
  };
  const settled = (token: string, id: string) =>
    waitFor(async () => {
      const r = await http.get(`/v1/privacy/requests/${id}`, token);
      return r.body.status === 'completed' || r.body.status === 'failed' ? r.body : undefined;
    }, `privacy request ${id}`, 30_000);
  /** An objection waits for compliance once every service heard of it. */
  const awaitingDecision = (token: string, id: string) =>
    waitFor(async () => {
      const r = await http.get(`/v1/privacy/requests/${id}`, token);
      return r.body.status === 'in_progress' && r.body.steps.every((s: { status: string }) => s.status === 'completed') ? r.body : undefined;
    }, `privacy request ${id} to await its decision`, 30_000);

  it('ends a revoked compliance role at once, not when its access token expires, and signs its holder out', async () => {
    const cora = await register('Cora', 'Entzogen');
    await identityService.commands!['grant-role'](world.services.identity.app, [cora.email, 'compliance']);
    const signedIn = (await http.post('/v1/auth/login', { email: cora.email, password: PASSWORD })).body;
    expect((await http.get('/v1/admin/privacy/requests', signedIn.accessToken)).status).toBe(200);
    await identityService.commands!['revoke-role'](world.services.identity.app, [cora.email, 'compliance']);
    // Her sessions end with the role, and the gateway hears of it at once: the token is refused outright.
    await waitFor(async () => ((await http.get('/v1/admin/privacy/requests', signedIn.accessToken)).status === 401 ? true : undefined), 'the ended session to be refused', 2_000);
    expectProblem(await http.post('/v1/admin/privacy/legal-holds', { userId: cora.user.id, reason: 'Nach dem Entzug' }, signedIn.accessToken), 401);
    expect(await env.sql(`SELECT 1 FROM privacy.legal_holds WHERE user_id = $1`, [cora.user.id])).toEqual([]);
    // Her sessions ended with the role: the refresh token gets no token without it, a new sign-in does.
    expect((await http.post('/v1/auth/refresh', { refreshToken: signedIn.refreshToken })).status).toBe(401);
    const again = (await http.post('/v1/auth/login', { email: cora.email, password: PASSWORD })).body;
    expectProblem(await http.get('/v1/admin/privacy/requests', again.accessToken), 403);
  });

  it('lets a compliance role granted from the CLI work at once, with the token its holder already has (an API key never)', async () => {
    const cora = await register('Cora', 'Neu');
    expectProblem(await http.get('/v1/admin/privacy/requests', cora.accessToken), 403);
    await identityService.commands!['grant-role'](world.services.identity.app, [cora.email, 'compliance']);
    expect((await http.get('/v1/admin/privacy/requests', cora.accessToken)).status).toBe(200);
    const key = (await http.post('/v1/me/api-keys', { name: 'admin?', workspace: 'private' }, cora.accessToken)).body.key as string;
    expectProblem(await http.get('/v1/admin/privacy/requests', key), 403);
  });

  it('runs one retention run at a time: one started while another has not finished is a 409 naming it, and may start once it finished', async () => {
    const cora = await complianceToken();
    // A run handed to a Kubernetes Job that has not begun: it has not finished, so no other starts.
    const waiting = randomUUID();
    await env.sql(`INSERT INTO privacy.retention_runs (id, dry_run, trigger, launched_as) VALUES ($1, true, 'compliance', 'kubernetes-job')`, [waiting]);
    const refused = await http.post('/v1/admin/privacy/retention-runs', { dryRun: true }, cora);
    expectProblem(refused, 409);
    expect(refused.body.detail).toContain(waiting);
    await env.sql(`UPDATE privacy.retention_runs SET status = 'completed', finished_at = now() WHERE id = $1`, [waiting]);

    // Started at the same moment: each one refused names a run that had not finished, and the runs accepted never overlap
    // (a dry run may finish before the last request arrives, which may then start).
    const started = await Promise.all([0, 1, 2].map(() => http.post('/v1/admin/privacy/retention-runs', { dryRun: true }, cora)));
    const accepted = started.filter((r) => r.status === 202).map((r) => r.body.id as string);
    expect(accepted.length).toBeGreaterThanOrEqual(1);
    expect(started.filter((r) => r.status !== 202).map((r) => r.status)).toEqual(started.filter((r) => r.status !== 202).map(() => 409));
    for (const no of started.filter((r) => r.status === 409)) {
      expectProblem(no, 409);
      expect(accepted.some((id) => no.body.detail.includes(id))).toBe(true);
    }
    for (const id of accepted) {
      await waitFor(async () => ((await http.get(`/v1/admin/privacy/retention-runs/${id}`, cora)).body.status === 'completed' ? true : undefined), `run ${id} to finish`, 30_000);
    }
    const spans = await env.sql<{ started: Date; finished: Date }>(`SELECT started_at AS started, finished_at AS finished FROM privacy.retention_runs WHERE id = ANY($1::uuid[]) ORDER BY started_at`, [accepted]);
    for (let i = 1; i < spans.length; i++) expect(new Date(spans[i].started).getTime()).toBeGreaterThanOrEqual(new Date(spans[i - 1].finished).getTime());
    expect((await http.post('/v1/admin/privacy/retention-runs', { dryRun: true }, cora)).status).toBe(202);
  });

  it('lists retention runs newest first, each with what it deleted or would have, narrowed by state and kind, a page at a time', async () => {
    const cora = await complianceToken();
    const unfinished = async () =>
      (await Promise.all(['queued', 'running'].map(async (status) => (await http.get(`/v1/admin/privacy/retention-runs?status=${status}`, cora)).body.data.length))).every((n) => n === 0) || undefined;
    await waitFor(unfinished, 'the runs started before to finish', 30_000);
    const started = await http.post('/v1/admin/privacy/retention-runs', { dryRun: true, categories: ['login-audit'] }, cora);
    expect(started.status).toBe(202);
    await waitFor(unfinished, 'the run to finish', 30_000);

    const first = await http.get('/v1/admin/privacy/retention-runs?limit=1', cora);
    expect(first.status).toBe(200);
    expect(first.body.data).toEqual([
      expect.objectContaining({ id: started.body.id, status: 'completed', dryRun: true, trigger: 'compliance', categories: ['login-audit'], results: [{ service: 'identity', category: 'login-audit', affected: expect.any(Number) }] }),
    ]);
    expect(first.body.nextCursor).toEqual(expect.any(String));
    const second = await http.get(`/v1/admin/privacy/retention-runs?limit=1&cursor=${encodeURIComponent(first.body.nextCursor)}`, cora);
    expect(second.body.data).toHaveLength(1);
    expect(second.body.data[0].id).not.toBe(started.body.id);
    expect(Date.parse(second.body.data[0].createdAt)).toBeLessThanOrEqual(Date.parse(first.body.data[0].createdAt));

    const all = (await http.get('/v1/admin/privacy/retention-runs?limit=100', cora)).body.data as { id: string; status: string; dryRun: boolean }[];
    const completedDry = (await http.get('/v1/admin/privacy/retention-runs?status=completed&dryRun=true&limit=100', cora)).body.data as { id: string }[];
    expect(completedDry.map((r) => r.id)).toEqual(all.filter((r) => r.status === 'completed' && r.dryRun).map((r) => r.id));
    expect((await http.get('/v1/admin/privacy/retention-runs?dryRun=false', cora)).body.data).toEqual([]);

    expectProblem(await http.get('/v1/admin/privacy/retention-runs?status=done', cora), 400, ['status']);
    const member = await register('Rita', 'Neugier');
    expectProblem(await http.get('/v1/admin/privacy/retention-runs', member.accessToken), 403);
  });

  it('takes one decision on a request however many compliance officers click at once', async () => {
    const olga = await register('Olga', 'Einspruch');
    const objection = (await http.post('/v1/privacy/requests', { type: 'objection' }, olga.accessToken)).body;
    await awaitingDecision(olga.accessToken, objection.id);
    const cora = await complianceToken();
    const answers = await Promise.all(
      Array.from({ length: 6 }, (_, i) => http.post(`/v1/admin/privacy/requests/${objection.id}/decision`, { decision: i % 2 ? 'reject' : 'uphold', reason: `officer ${i}` }, cora)),
    );
    expect(answers.map((a) => a.status).sort()).toEqual([200, 409, 409, 409, 409, 409]);
    for (const refused of answers.filter((a) => a.status === 409)) expectProblem(refused, 409);
    const decisions = await env.sql<{ action: string; actor: string }>(`SELECT action, actor FROM privacy.audit_log WHERE request_id = $1 AND action IN ('request.uphold', 'request.reject')`, [objection.id]);
    expect(decisions).toHaveLength(1);
    // Staff act under their id, as for holds and policies: the trail says which officer decided.
    expect(decisions[0].actor).toBe(`staff:${(await http.get('/v1/me', cora)).body.id}`);
    const upheld = await env.sql(`SELECT 1 FROM privacy.outbox WHERE type = 'privacy.subject.objection-upheld' AND payload->'data'->>'requestId' = $1`, [objection.id]);
    expect(upheld).toHaveLength(decisions[0].action === 'request.uphold' ? 1 : 0);
  });

  it('names the bad field: an unknown category of a retention run, a misspelt scope, a purpose that is no purpose name', async () => {
    const cora = await complianceToken();
    const unknown = await http.post('/v1/admin/privacy/retention-runs', { dryRun: true, categories: ['login-audit', 'chat-histroy', 'nope'] }, cora);
    expectProblem(unknown, 400, ['categories.1', 'categories.2']);
    expect(unknown.body.errors).toHaveLength(2);
    // A category named twice runs once.
    const twice = await http.post('/v1/admin/privacy/retention-runs', { dryRun: true, categories: ['login-audit', 'login-audit'] }, cora);
    expect(twice.status).toBe(202);
    expect(twice.body.categories).toEqual(['login-audit']);
    const run = await waitFor(async () => {
      const r = await http.get(`/v1/admin/privacy/retention-runs/${twice.body.id}`, cora);
      return r.body.finishedAt ? r.body : undefined;
    }, 'the dry run');
    expect(run.results).toEqual([{ service: 'identity', category: 'login-audit', affected: 0 }]);

    const ulla = await register('Ulla', 'Umfang');
    for (const scope of ['ALL', 'org', null, 5]) {
      const res = await http.post('/v1/privacy/requests', { type: 'access', scope }, ulla.accessToken);
      expectProblem(res, 400, ['scope']);
      expect(res.body.errors[0].message).toBe("must be 'all', 'private' or an organisation id");
    }

    const consent = await http.post('/v1/privacy/consents', { subjectId: `cookie-${randomUUID()}`, purposes: { Analytics: true }, policyVersion: '2026-01' });
    expectProblem(consent, 400, ['purposes.Analytics']);
    expect(consent.body.errors[0].message).toMatch(/lower-case purpose name/);
  });

  it('says an export package went because of a later erasure, and a failed request has none', async () => {
    const emil = await register('Emil', 'Export');
    const access = (await http.post('/v1/privacy/requests', { type: 'access' }, emil.accessToken)).body;
    expect((await settled(emil.accessToken, access.id)).status).toBe('completed');
    expect((await http.get(`/v1/privacy/requests/${access.id}/download?format=json`, emil.accessToken)).status).toBe(200);

    const erasure = (await http.post('/v1/privacy/requests', { type: 'erasure', scope: 'private' }, emil.accessToken)).body;
    expect((await settled(emil.accessToken, erasure.id)).status).toBe('completed');
    const gone = await http.get(`/v1/privacy/requests/${access.id}/download`, emil.accessToken);
    expectProblem(gone, 410);
    expect(gone.body.detail).toMatch(/erased/);
    expect(gone.body.detail).not.toMatch(/7 days/);

    const portability = (await http.post('/v1/privacy/requests', { type: 'portability' }, emil.accessToken)).body;
    await settled(emil.accessToken, portability.id);
    await env.sql(`UPDATE privacy.requests SET status = 'failed', failure = 'test' WHERE id = $1`, [portability.id]);
    const failed = await http.get(`/v1/privacy/requests/${portability.id}/download`, emil.accessToken);
    expectProblem(failed, 409);
    expect(failed.body.detail).toMatch(/failed/);

    // One past its period says when it went (the period is compliance's setting, not a fixed 7 days).
    const old = (await http.post('/v1/privacy/requests', { type: 'access', scope: 'private' }, emil.accessToken)).body;
    expect((await settled(emil.accessToken, old.id)).status).toBe('completed');
    await env.sql(`UPDATE privacy.export_packages SET expires_at = '2026-01-02T03:04:05Z' WHERE request_id = $1`, [old.id]);
    const expired = await http.get(`/v1/privacy/requests/${old.id}/download`, emil.accessToken);
    expectProblem(expired, 410);
    expect(expired.body.detail).toBe('The export package expired on 2026-01-02T03:04:05.000Z; file a new request');
  });

  it('voids only the exports an erasure may have emptied: one of another workspace stays downloadable', async () => {
    const hanna = await register('Hanna', 'Teil');
    const org = (await http.post('/v1/orgs', { name: 'Teil & Partner' }, hanna.accessToken)).body;
    const ofOrg = (await http.post('/v1/privacy/requests', { type: 'access', scope: org.id }, hanna.accessToken)).body;
    const ofAll = (await http.post('/v1/privacy/requests', { type: 'access' }, hanna.accessToken)).body;
    for (const id of [ofOrg.id, ofAll.id]) expect((await settled(hanna.accessToken, id)).status).toBe('completed');

    const erasure = (await http.post('/v1/privacy/requests', { type: 'erasure', scope: 'private' }, hanna.accessToken)).body;
    expect((await settled(hanna.accessToken, erasure.id)).status).toBe('completed');
    expect((await http.get(`/v1/privacy/requests/${ofOrg.id}/download?format=json`, hanna.accessToken)).status).toBe(200);
    expectProblem(await http.get(`/v1/privacy/requests/${ofAll.id}/download?format=json`, hanna.accessToken), 410);
  });

  it("names a consent subject id that is no pseudonymous id as the path's", async () => {
    for (const res of [await http.get('/v1/privacy/consents/anon-123'), await http.delete('/v1/privacy/consents/anon-123')]) {
      expectProblem(res, 400, ['subjectId']);
      expect(res.body.detail).toBe('Invalid path parameter: subjectId (must be at least 16 characters)');
    }
  });

  it('records one withdrawal per purpose however many withdrawals arrive at once', async () => {
    const subjectId = `cookie-${randomUUID()}`;
    expect((await http.post('/v1/privacy/consents', { subjectId, purposes: { analytics: true, ads: true }, policyVersion: '2024-09-18' })).status).toBe(201);
    const answers = await Promise.all(Array.from({ length: 4 }, () => http.delete(`/v1/privacy/consents/${subjectId}`)));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200]);
    const { history } = (await http.get(`/v1/privacy/consents/${subjectId}`)).body;
    expect(history.filter((h: { source: string }) => h.source === 'withdrawal')).toHaveLength(2);
  });

  it('reads a long consent history in pages, so every answer stays small, and caps the purposes one subject may name', async () => {
    const subjectId = `cookie-${randomUUID()}`;
    const purposes = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`purpose-${String(i).padStart(2, '0')}`, true]));
    for (let v = 0; v < 5; v++) expect((await http.post('/v1/privacy/consents', { subjectId, purposes, policyVersion: `v${v}` })).status).toBe(201);
    const seen: { purpose: string; policyVersion: string }[] = [];
    let cursor: string | null = null;
    do {
      const page: HttpResult = await http.get(`/v1/privacy/consents/${subjectId}?limit=100${cursor ? `&cursor=${cursor}` : ''}`);
      expect(page.status).toBe(200);
      expect(page.body.current).toHaveLength(50);
      seen.push(...page.body.history);
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(new Set(seen.map((h) => `${h.purpose}@${h.policyVersion}`)).size).toBe(250);
    expect(seen).toHaveLength(250);
    // A withdrawal answers with the first page of the history (20 unless asked otherwise).
    const withdrawn = await http.delete(`/v1/privacy/consents/${subjectId}`);
    expect(withdrawn.status).toBe(200);
    expect(withdrawn.body.history).toHaveLength(20);
    expect(withdrawn.body.history.every((h: { source: string }) => h.source === 'withdrawal')).toBe(true);
    expect(withdrawn.body.nextCursor).toEqual(expect.any(String));

    const others = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`other-${i}`, true]));
    expect((await http.post('/v1/privacy/consents', { subjectId, purposes: others, policyVersion: 'v5' })).status).toBe(201);
    const tooMany = await http.post('/v1/privacy/consents', { subjectId, purposes: { 'one-too-many': true }, policyVersion: 'v5' });
    expectProblem(tooMany, 422);
    expect(tooMany.body.errors).toEqual([{ field: 'purposes', message: 'would make more than 100 purposes for this subject' }]);
    // Purposes it already has are decided as before.
    expect((await http.post('/v1/privacy/consents', { subjectId, purposes: { 'purpose-00': true }, policyVersion: 'v6' })).status).toBe(201);
  });

  it('orders a withdrawal after the grant it withdrew, also when a grant arrives while the withdrawal waits its turn', async () => {
    for (let round = 0; round < 8; round++) {
      const subjectId = `cookie-${randomUUID()}`;
      expect((await http.post('/v1/privacy/consents', { subjectId, purposes: { analytics: true }, policyVersion: 'v1' })).status).toBe(201);
      await Promise.all([
        http.delete(`/v1/privacy/consents/${subjectId}`),
        http.delete(`/v1/privacy/consents/${subjectId}`),
        http.post('/v1/privacy/consents', { subjectId, purposes: { analytics: true }, policyVersion: 'v2' }),
      ]);
      const { history, current } = (await http.get(`/v1/privacy/consents/${subjectId}`)).body as {
        history: { source: string; policyVersion: string; recordedAt: string; granted: boolean }[];
        current: { purpose: string; granted: boolean }[];
      };
      const oldestFirst = [...history].reverse();
      // Every withdrawal comes after the grant of the version it withdrew, and what holds is the last decision.
      for (const [i, h] of oldestFirst.entries()) {
        if (h.source === 'withdrawal') expect(oldestFirst.slice(0, i).some((g) => g.source === 'given' && g.policyVersion === h.policyVersion)).toBe(true);
      }
      expect(current.find((c) => c.purpose === 'analytics')!.granted).toBe(oldestFirst.at(-1)!.granted);
    }
  });

  it("answers a decision on the request of a subject erased since with 409 saying so (the list shows it; 'no such request' was wrong)", async () => {
    const cora = await complianceToken();
    const paul = await register('Paul', 'Spät');
    const objection = (await http.post('/v1/privacy/requests', { type: 'objection' }, paul.accessToken)).body;
    await awaitingDecision(paul.accessToken, objection.id);
    // What an erasure of the whole account leaves of the subject's other requests.
    await env.sql(`UPDATE privacy.requests SET user_id = NULL WHERE id = $1`, [objection.id]);
    const res = await http.post(`/v1/admin/privacy/requests/${objection.id}/decision`, { decision: 'uphold', reason: 'late' }, cora);
    expectProblem(res, 409);
    expect(res.body.detail).toMatch(/erased/);
  });

  it("refuses a request scoped to an organisation that is not the caller's as not found, and chat keeps the stranger's 404 (never a 403)", async () => {
    const jana = await register('Jana', 'Novák');
    const mia = await register('Mia', 'Wagner');
    const orgId = (await http.post('/v1/orgs', { name: 'Novák GmbH' }, jana.accessToken)).body.id as string;
    for (const type of ['access', 'restriction', 'erasure']) {
      const refused = await http.post('/v1/privacy/requests', { type, scope: orgId }, mia.accessToken);
      expectProblem(refused, 404);
      expect(refused.body.detail).toMatch(/scope "all"/);
    }
    expectProblem(await http.post('/v1/privacy/requests', { type: 'access', scope: randomUUID() }, mia.accessToken), 404);
    expect(await env.sql(`SELECT 1 FROM privacy.requests WHERE user_id = $1`, [mia.user.id])).toEqual([]);
    // The owner's own organisation is a scope of hers.
    expect((await http.post('/v1/privacy/requests', { type: 'access', scope: orgId }, jana.accessToken)).status).toBe(202);

    // A restriction that names the organisation (filed before this check, or straight to chat's replica) still leaves a stranger a stranger.
    await env.sql(`INSERT INTO chat.restrictions (request_id, user_id, scope) VALUES ($1, $2, $3)`, [randomUUID(), mia.user.id, orgId]);
    expectProblem(await http.get(`/v1/conversations?workspace=${orgId}`, mia.accessToken), 404);
    expectProblem(await http.get(`/v1/models?workspace=${orgId}`, mia.accessToken), 404);
  });

  it('pages the legal holds by cursor: none is lost past the first page', async () => {
    const cora = await complianceToken();
    const before = (await env.sql<{ n: number }>(`SELECT count(*)::int AS n FROM privacy.legal_holds`))[0].n;
    await env.sql(
      `INSERT INTO privacy.legal_holds (id, user_id, subject_hash, reason, created_by, created_at)
       SELECT gen_random_uuid(), gen_random_uuid(), 'h' || g, 'Steuerprüfung', $1, now() - g * interval '1 second' FROM generate_series(1, 230) g`,
      [randomUUID()],
    );
    const seen = new Set<string>();
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: { status: number; body: any } = await http.get(`/v1/admin/privacy/legal-holds?limit=100${cursor ? `&cursor=${cursor}` : ''}`, cora);
      expect(page.status).toBe(200);
      for (const hold of page.body.data) seen.add(hold.id);
      cursor = page.body.nextCursor;
      pages++;
    } while (cursor);
    expect({ seen: seen.size, pages }).toEqual({ seen: before + 230, pages: Math.ceil((before + 230) / 100) });
    expect((await http.get('/v1/admin/privacy/legal-holds', cora)).body.data).toHaveLength(20);
  });

  it('leaves the subject their other rights while a legal hold suspends their erasure (it may wait for years)', async () => {
    const cora = await complianceToken();
    const hans = await register('Hans', 'Gehalten');
    expect((await http.post('/v1/admin/privacy/legal-holds', { userId: hans.user.id, reason: 'Rechtsstreit' }, cora)).status).toBe(201);
    const erasure = await http.post('/v1/privacy/requests', { type: 'erasure' }, hans.accessToken);
    expect(erasure.status).toBe(202);
    await waitFor(async () => ((await http.get(`/v1/privacy/requests/${erasure.body.id}`, hans.accessToken)).body.suspended ? true : undefined), 'the erasure to wait for the hold');
    const access = await http.post('/v1/privacy/requests', { type: 'access' }, hans.accessToken);
    expect(access.status).toBe(202);
    expect((await settled(hans.accessToken, access.body.id)).status).toBe('completed');
    expect((await http.post('/v1/privacy/requests', { type: 'restriction' }, hans.accessToken)).status).toBe(202);
    // A second erasure is still the one already filed.
    expectProblem(await http.post('/v1/privacy/requests', { type: 'erasure' }, hans.accessToken), 409);
  });

  it('keeps a conversation or a private assistant its owner deletes while a legal hold stands, and deletes it once the hold is released', async () => {
    const cora = await complianceToken();
    const lena = await register('Lena', 'Gehalten');
    const conversation = (await http.post('/v1/conversations', { workspace: 'private', title: 'Vertrag' }, lena.accessToken)).body.id as string;
    const assistant = (await http.post('/v1/assistants', { workspace: 'private', name: 'Anwältin', instructions: 'Zitiere Paragraphen.' }, lena.accessToken)).body.id as string;
    const hold = await http.post('/v1/admin/privacy/legal-holds', { userId: lena.user.id, reason: 'Rechtsstreit Az. 5 O 12/26' }, cora);
    expect(hold.status).toBe(201);
    const refused = await http.delete(`/v1/conversations/${conversation}`, lena.accessToken);
    expectProblem(refused, 409);
    expect(refused.body.detail).toMatch(/legal hold/);
    expect(await env.sql(`SELECT 1 FROM chat.conversations WHERE id = $1`, [conversation])).toHaveLength(1);
    expectProblem(await http.delete(`/v1/assistants/${assistant}`, lena.accessToken), 409);
    expect((await http.delete(`/v1/admin/privacy/legal-holds/${hold.body.id}`, cora)).status).toBe(200);
    expect((await http.delete(`/v1/conversations/${conversation}`, lena.accessToken)).status).toBe(204);
    expect(await env.sql(`SELECT 1 FROM chat.conversations WHERE id = $1`, [conversation])).toEqual([]);
    expect((await http.delete(`/v1/assistants/${assistant}`, lena.accessToken)).status).toBe(204);
    expect(await env.sql(`SELECT 1 FROM chat.assistants WHERE id = $1`, [assistant])).toEqual([]);
  });

  it("keeps an organisation's assistant an admin deletes while its author is under a legal hold", async () => {
    const cora = await complianceToken();
    const owner = await register('Olga', 'Inhaberin');
    await confirmEmail(env, owner.user.id);
    const org = (await http.post('/v1/orgs', { name: 'Gehalten Bau GmbH' }, owner.accessToken)).body;
    const author = await register('Arne', 'Autor');
    const invite = (await http.post(`/v1/orgs/${org.id}/invitations`, { email: author.email, role: 'admin' }, owner.accessToken)).body;
    const invited = await lastEvent<{ invitationId: string; token: string }>(env, 'identity.invitation.created', (e) => e.data.invitationId === invite.id);
    expect((await http.post('/v1/invitations/accept', { token: invited.data.token }, author.accessToken)).status).toBe(200);
    const assistant = await waitFor(async () => {
      const r = await http.post('/v1/assistants', { workspace: org.id, name: 'Bauleiter', instructions: 'Antworte knapp.' }, author.accessToken);
      return r.status === 201 ? (r.body.id as string) : undefined;
    }, 'the membership to reach chat');
    const hold = await http.post('/v1/admin/privacy/legal-holds', { userId: author.user.id, reason: 'Rechtsstreit Az. 7 O 3/26' }, cora);
    expect(hold.status).toBe(201);
    const refused = await http.delete(`/v1/assistants/${assistant}`, owner.accessToken);
    expectProblem(refused, 409);
    expect(refused.body.detail).toMatch(/legal hold/);
    expect((await http.delete(`/v1/admin/privacy/legal-holds/${hold.body.id}`, cora)).status).toBe(200);
    expect((await http.delete(`/v1/assistants/${assistant}`, owner.accessToken)).status).toBe(204);
  });

  it('refuses a legal hold for an id no account has, instead of holding nothing', async () => {
    const cora = await complianceToken();
    const typo = await http.post('/v1/admin/privacy/legal-holds', { userId: randomUUID(), reason: 'Rechtsstreit Az. 9 O 1/26' }, cora);
    expectProblem(typo, 404);
    expect(typo.body.errors).toEqual([{ field: 'userId', message: 'is no account' }]);
  });

  it('an erasure of the whole account leaves no row naming the subject, their private spend cap included', async () => {
    const ida = await register('Ida', 'Kapphahn');
    const capped = await http.request('PUT', '/v1/billing/caps', { body: { workspace: 'private', monthlyTokens: 5000 }, token: ida.accessToken });
    expect(capped.status).toBe(200);
    expect(await env.sql(`SELECT workspace, user_id FROM billing.caps WHERE workspace = $1`, [`private:${ida.user.id}`])).toHaveLength(1);
    const erasure = await http.post('/v1/privacy/requests', { type: 'erasure' }, ida.accessToken);
    expect(erasure.status).toBe(202);
    // The account is gone when it completes: compliance sees how it ended.
    const cora = await complianceToken();
    const done = await waitFor(async () => {
      const list = await http.get('/v1/admin/privacy/requests?limit=100', cora);
      return list.body.data.find((r: { id: string; status: string }) => r.id === erasure.body.id && r.status !== 'received' && r.status !== 'in_progress');
    }, 'the erasure to end', 40_000);
    expect(done.status).toBe('completed');
    const dump = await everyRow(env);
    const traces = Object.entries(dump)
      .filter(([t]) => !t.endsWith('.outbox'))
      .filter(([, rows]) => [ida.user.id, ida.email].some((n) => rows.includes(n)))
      .map(([t]) => t);
    expect(traces).toEqual([]);
  });

  it("an erasure of the private workspace takes its spend cap, which its export showed", async () => {
    const ina = await register('Ina', 'Kappwerk');
    expect((await http.request('PUT', '/v1/billing/caps', { body: { workspace: 'private', monthlyTokens: 5000 }, token: ina.accessToken })).status).toBe(200);
    const access = await http.post('/v1/privacy/requests', { type: 'access', scope: 'private' }, ina.accessToken);
    expect((await settled(ina.accessToken, access.body.id)).status).toBe('completed');
    const files = (await http.get(`/v1/privacy/requests/${access.body.id}/download?format=json`, ina.accessToken)).body.files;
    // The export shows the cap as the subject's data of the private workspace...
    expect(files['data/billing.json'].categories.contract.caps).toEqual([expect.objectContaining({ workspace: `private:${ina.user.id}` })]);
    const erasure = await http.post('/v1/privacy/requests', { type: 'erasure', scope: 'private' }, ina.accessToken);
    expect((await settled(ina.accessToken, erasure.body.id)).status).toBe('completed');
    // ...and the erasure of that scope takes it.
    expect(await env.sql(`SELECT workspace FROM billing.caps WHERE workspace = $1`, [`private:${ina.user.id}`])).toEqual([]);
  });

  it('refuses an objection for one workspace: what it reaches (the login audit, the suppression list) is the whole account\'s, so it would be upheld with nothing stopped', async () => {
    const olga = await register('Olga', 'Einspruch');
    for (const scope of ['private', randomUUID()]) {
      const objection = await http.post('/v1/privacy/requests', { type: 'objection', scope }, olga.accessToken);
      expectProblem(objection, 400, ['scope']);
      expect(objection.body.errors[0].message).toMatch(/whole account/);
    }
    // The whole account's is taken, with or without naming it.
    expect((await http.post('/v1/privacy/requests', { type: 'objection' }, olga.accessToken)).status).toBe(202);
    expect(await env.sql(`SELECT scope FROM privacy.requests WHERE user_id = $1`, [olga.user.id])).toEqual([{ scope: 'all' }]);
  });
});
