import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { AgeRetentionService } from '@ally/platform';
import { randomBytes, randomUUID } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { DataSource } from 'typeorm';
import { PrivacyRpc, type Actor } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { createTestEnv, lastEvent, waitFor, type RunningService, type TestEnv } from '@ally/testing';
import { privacyService } from '../src/privacy.service.js';
import { AuditTrail } from '../src/audit/audit-trail.service.js';
import { RequestsService } from '../src/requests/requests.service.js';
import { SagaWorker } from '../src/sagas/saga-worker.js';
import { DownloadsService } from '../src/exports/downloads.service.js';
import { DUE_DATE } from '../src/requests/requests.repository.js';
import { FakeServices } from './fake-services.js';

const FAST = {
  PRIVACY_POLL_MS: '50',
  PRIVACY_STEP_TIMEOUT_MS: '400',
  PRIVACY_RETRY_BASE_MS: '50',
  PRIVACY_RETRY_MAX_MS: '200',
  PRIVACY_STEP_LEASE_MS: '1500',
  PRIVACY_KEK: randomBytes(32).toString('base64'),
  PRIVACY_SUBJECT_SALT: 'a-test-salt-of-sufficient-length',
  RETENTION_RUNNER: 'in-process',
  PRIVACY_ERASE_SLICES_PER_ATTEMPT: '2',
  // The least it may be: one test's export outgrows it.
  PRIVACY_EXPORT_MAX_BYTES: '1000000',
};

const user = (): Actor => ({ userId: randomUUID(), platformRoles: [] });
const compliance: Actor = { userId: randomUUID(), platformRoles: ['compliance'] };

describe('privacy sagas against services on the wire', () => {
  let env: TestEnv;
  let privacy: RunningService;
  let rpc: RpcClient;
  let fakes: FakeServices;

  beforeAll(async () => {
    env = await createTestEnv();
    privacy = await env.start(privacyService, FAST);
    rpc = new RpcClient(await env.nats(), env.prefix);
    await rpc.connect();
    fakes = new FakeServices(await env.nats(), env.prefix).listen(['identity', 'chat', 'billing', 'notify']);
  });

  afterAll(async () => {
    fakes?.close();
    await rpc?.close();
    await env?.close();
  });

  const request = (actor: Actor, type: 'access' | 'portability' | 'erasure' | 'restriction' | 'objection', scope = 'all') =>
    rpc.call(PrivacyRpc.createRequest, { type, scope }, { actor });
  const settled = (actor: Actor, id: string, timeoutMs = 15_000) =>
    waitFor(async () => {
      const r = await rpc.call(PrivacyRpc.getRequest, { id }, { actor });
      return r.status === 'completed' || r.status === 'failed' ? r : undefined;
    }, `request ${id} to settle`, timeoutMs);

  it('keeps the step of an export that outlasts its lease page by page, instead of starting it again beside itself', async () => {
    const ole = user();
    // Six pages of 300 ms each (within the 400 ms a call may take): longer than the 1.5 s lease.
    fakes.on('chat', 'export', async (input) => {
      if (input.userId !== ole.userId) return { service: 'chat', categories: {} };
      await new Promise((r) => setTimeout(r, 300));
      const page = Number(input.page);
      return { service: 'chat', categories: { 'chat-history': { conversations: [{ id: `c${page}` }] } }, ...(page < 5 ? { nextPage: page + 1 } : {}) };
    });
    // A second replica, which takes up any step whose lease ran out.
    const second = await env.start(privacyService, FAST);
    try {
      const created = await request(ole, 'access');
      expect((await settled(ole, created.id)).status).toBe('completed');
      const firstPages = fakes.callsTo('chat', 'export').filter((c) => c.input.userId === ole.userId && Number(c.input.page) === 0);
      expect(firstPages).toHaveLength(1);
    } finally {
      fakes.on('chat', 'export', () => ({ service: 'chat', categories: {} }));
      await env.stop(second);
    }
  });

  it('finishes other requests while one long step runs: a step holds its slot, not the whole worker', async () => {
    const [slow, quick] = [user(), user()];
    const before = fakes.handlerOf('chat', 'export')!;
    // slow's history: twelve pages of 300 ms each, over three seconds with the lease kept.
    fakes.on('chat', 'export', async (input: { userId: string; page: number }, call) => {
      if (input.userId !== slow.userId) return before(input, call);
      await new Promise((r) => setTimeout(r, 300));
      const page = Number(input.page);
      return { service: 'chat', categories: { 'chat-history': { conversations: [{ id: `c${page}` }] } }, ...(page < 11 ? { nextPage: page + 1 } : {}) };
    });
    try {
      const long = await request(slow, 'access');
      await waitFor(async () => (fakes.callsTo('chat', 'export').some((c) => c.input.userId === slow.userId) ? true : undefined), 'the long export to begin');
      const short = await request(quick, 'access');
      expect((await settled(quick, short.id)).status).toBe('completed');
      // Done while the long one still reads its pages (a pass used to wait for every step it had claimed).
      expect((await rpc.call(PrivacyRpc.getRequest, { id: long.id }, { actor: slow })).status).toBe('in_progress');
      expect((await settled(slow, long.id)).status).toBe('completed');
    } finally {
      fakes.on('chat', 'export', before);
    }
  });

  it('gives a package the shorter of PRIVACY_EXPORT_TTL_DAYS and the period compliance set for export packages to be downloaded in', async () => {
    await env.sql(`INSERT INTO privacy.retention_policies (service, category, retention_days, basis, updated_by) VALUES ('privacy', 'export-packages', 3, 'contract', 'staff:test')`);
    try {
      const ines = user();
      const created = await request(ines, 'access');
      const done = await settled(ines, created.id);
      expect(done.status).toBe('completed');
      const days = (Date.parse(done.downloadUntil!) - Date.parse(done.completedAt!)) / 86_400_000;
      expect(days).toBeCloseTo(3, 3);
      const [pkg] = await env.sql(`SELECT expires_at FROM privacy.export_packages WHERE request_id = $1`, [created.id]);
      expect(new Date(pkg.expires_at).toISOString()).toBe(done.downloadUntil);
    } finally {
      await env.sql(`DELETE FROM privacy.retention_policies WHERE service = 'privacy' AND category = 'export-packages'`);
    }
  });

  it('exports every service holding personal data (from contracts) into one encrypted package, and says so by event', async () => {
    const lea = user();
    fakes
      .on('identity', 'export', (input) => ({ service: 'identity', categories: { account: { id: input.userId, email: 'lea@example.eu', first_name: 'Lea', locale: 'en' }, memberships: [] } }))
      .on('chat', 'export', () => ({ service: 'chat', categories: { 'chat-history': { conversations: [{ id: 'c1', messages: [{ role: 'user', content: 'Hallo Nordlicht' }] }], assistants: [] } } }));
    const created = await request(lea, 'access');
    expect(created).toMatchObject({ type: 'access', scope: 'all', status: 'received' });
    expect(Date.parse(created.dueAt) - Date.now()).toBeGreaterThan(27 * 86_400_000);
    expect(created.steps.map((s) => s.service).sort()).toEqual(['billing', 'chat', 'identity', 'notify']);

    const done = await settled(lea, created.id);
    expect(done.status).toBe('completed');
    expect(done.downloadUntil).not.toBeNull();
    expect(done.steps.find((s) => s.service === 'chat')!.result).toEqual({ 'chat-history': 1 });

    // At rest, nothing readable: the package and its key are sealed.
    const [stored] = await env.sql(`SELECT sealed FROM privacy.export_packages WHERE request_id = $1`, [created.id]);
    expect(stored.sealed.toString('latin1')).not.toContain('Nordlicht');
    expect(() => gunzipSync(stored.sealed)).toThrow();

    const meta = await rpc.call(PrivacyRpc.download, { id: created.id, format: 'json' }, { actor: lea });
    expect(meta.contentType).toBe('application/json');
    const parts: Buffer[] = [];
    for (let i = 0; i < meta.parts; i++) parts.push(Buffer.from((await rpc.call(PrivacyRpc.downloadPart, { id: created.id, format: 'json', part: i }, { actor: lea })).data, 'base64'));
    const pkg = JSON.parse(Buffer.concat(parts).toString('utf8'));
    expect(Object.keys(pkg.files).sort()).toEqual(
      ['README.md', 'information.json', 'request.json', ...['billing', 'chat', 'identity', 'notify', 'privacy'].flatMap((s) => [`data/${s}.json`, `schemas/${s}.schema.json`])].sort(),
    );
    expect(pkg.files['data/chat.json'].categories['chat-history'].conversations[0].messages[0].content).toBe('Hallo Nordlicht');
    const info = pkg.files['information.json'];
    const history = info.categories.find((c: any) => c.category === 'chat-history');
    expect(history).toMatchObject({ legalBasis: 'contract (Art. 6(1)(b) GDPR)', automatedDecisionMaking: expect.stringMatching(/^none/) });
    expect(history.recipients.map((r: any) => r.name)).toEqual(expect.arrayContaining(['Microsoft Ireland Operations Limited', 'OpenAI Ireland Ltd', 'Hetzner Online GmbH']));
    expect(pkg.files['schemas/chat.schema.json'].properties.categories.properties['chat-history']).toMatchObject({ type: 'object', description: expect.stringContaining('Conversations') });
    expect(pkg.files['README.md']).toContain('data/chat.json');

    const ready = await lastEvent(env, 'privacy.export.ready', (e: any) => e.data.requestId === created.id);
    expect(ready.data).toMatchObject({ userId: lea.userId, email: 'lea@example.eu', firstName: 'Lea', locale: 'en', downloadPath: `/privacy/requests/${created.id}/download` });
  });

  it('shows a user only their own requests and packages', async () => {
    const owner = user();
    const other = user();
    const r = await request(owner, 'portability');
    await settled(owner, r.id);
    await expect(rpc.call(PrivacyRpc.getRequest, { id: r.id }, { actor: other })).rejects.toMatchObject({ status: 404 });
    await expect(rpc.call(PrivacyRpc.download, { id: r.id, format: 'zip' }, { actor: other })).rejects.toMatchObject({ status: 404 });
    expect((await rpc.call(PrivacyRpc.listRequests, {}, { actor: other })).data).toEqual([]);
    expect((await rpc.call(PrivacyRpc.listRequests, {}, { actor: owner })).data.map((x) => x.id)).toEqual([r.id]);
    await expect(rpc.call(PrivacyRpc.adminListRequests, {}, { actor: owner })).rejects.toMatchObject({ status: 403 });
    expect((await rpc.call(PrivacyRpc.adminListRequests, { status: 'completed' }, { actor: compliance })).data.map((x) => x.id)).toContain(r.id);
    // Their own request of a kind that makes no package is there, and says so (not "no such request").
    const restriction = await request(owner, 'restriction');
    await expect(rpc.call(PrivacyRpc.download, { id: restriction.id, format: 'zip' }, { actor: owner })).rejects.toMatchObject({
      status: 409,
      message: 'A restriction request has no export package: only access and portability requests have one',
    });
  });

  it('takes an export of one kind and scope once a day while its package is there to download; another kind or scope, or a day later, goes', async () => {
    const owner = user();
    const first = await request(owner, 'access');
    await settled(owner, first.id);
    await expect(request(owner, 'access')).rejects.toMatchObject({
      status: 409,
      extra: { type: 'https://ally.eu/problems/limit-reached' },
      message: expect.stringMatching(new RegExp(`ready to download \\(request ${first.id}\\); a new one can be asked for from `)),
    });
    await settled(owner, (await request(owner, 'portability')).id);
    await settled(owner, (await request(owner, 'access', 'private')).id);
    await env.sql(`UPDATE privacy.requests SET completed_at = now() - interval '25 hours' WHERE id = $1`, [first.id]);
    await expect(request(owner, 'access')).resolves.toMatchObject({ type: 'access', scope: 'all' });
  });

  it('puts a package together once for downloads asked for at the same moment, and turns away more assemblies than a replica takes at once', async () => {
    const [owner, second, third] = [user(), user(), user()];
    const ids: string[] = [];
    for (const who of [owner, second, third]) {
      const r = await request(who, 'access');
      await settled(who, r.id);
      ids.push(r.id);
    }
    const downloads = privacy.app.get(DownloadsService);
    const assemble = jest.spyOn(downloads as unknown as { assemble: (...args: unknown[]) => Promise<unknown> }, 'assemble');
    const original = (DownloadsService.prototype as unknown as { assemble: (...args: unknown[]) => Promise<unknown> }).assemble;
    // Assemblies wait at a gate the test opens: every download below arrives while the first is still under way.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    assemble.mockImplementation(async function (this: unknown, ...args: unknown[]) {
      await gate;
      return original.apply(this, args);
    });
    try {
      const same = Array.from({ length: 8 }, () => rpc.call(PrivacyRpc.download, { id: ids[0], format: 'zip' }, { actor: owner }));
      await waitFor(async () => (assemble.mock.calls.length >= 1 ? true : undefined), 'the first assembly');
      const other = rpc.call(PrivacyRpc.download, { id: ids[1], format: 'zip' }, { actor: second });
      await waitFor(async () => (assemble.mock.calls.length === 2 ? true : undefined), 'a second assembly');
      // Two under way: a third package waits its turn as a 503; a part of one (its download begun) is never turned away.
      const turnedAway = await rpc.call(PrivacyRpc.download, { id: ids[2], format: 'zip' }, { actor: third }).catch((e) => e);
      expect({ status: turnedAway.status, retryAfter: turnedAway.extra?.retryAfter }).toEqual({ status: 503, retryAfter: 5 });
      const part = rpc.call(PrivacyRpc.downloadPart, { id: ids[2], format: 'zip', part: 0 }, { actor: third });
      release();
      const metas = await Promise.all(same);
      expect(new Set(metas.map((m) => m.sha256)).size).toBe(1);
      expect((await other).filename).toBe(`ally-export-${ids[1]}.zip`);
      expect((await part).data.length).toBeGreaterThan(0);
      // The eight downloads of one package shared one assembly; the other package and the part had theirs.
      expect(assemble).toHaveBeenCalledTimes(3);
    } finally {
      assemble.mockRestore();
    }
  });

  it('lets a package expire after its days with its key, audited as every state change is', async () => {
    const owner = user();
    const r = await request(owner, 'access');
    await settled(owner, r.id);
    await env.sql(`UPDATE privacy.export_packages SET expires_at = now() - interval '1 second' WHERE request_id = $1`, [r.id]);
    await env.sql(`UPDATE privacy.requests SET download_until = now() - interval '1 second' WHERE id = $1`, [r.id]);
    await privacy.app.get(SagaWorker).expireExports();
    expect(await env.sql(`SELECT wrapped_key FROM privacy.requests WHERE id = $1`, [r.id])).toEqual([{ wrapped_key: null }]);
    expect(await env.sql(`SELECT actor FROM privacy.audit_log WHERE request_id = $1 AND action = 'export.expired'`, [r.id])).toEqual([{ actor: 'system' }]);
    await expect(rpc.call(PrivacyRpc.download, { id: r.id, format: 'zip' }, { actor: owner })).rejects.toMatchObject({ status: 410 });
  });

  it('counts the month a request is due in on the German calendar, and 30 days where that is shorter (Swiss DSG)', async () => {
    const dueFor = async (received: string) =>
      (await env.sql<{ due: Date }>(`SELECT ${DUE_DATE.replaceAll('now()', '$1::timestamptz')} AS due`, [received]))[0].due.toISOString();
    // 31 January, 00:30 in Berlin (still 30 January in UTC): due 28 February, 00:30 in Berlin.
    expect(await dueFor('2026-01-30T23:30:00Z')).toBe('2026-02-27T23:30:00.000Z');
    // 31 March, 00:30 in Berlin (summer time): due 30 April.
    expect(await dueFor('2026-03-30T22:30:00Z')).toBe('2026-04-29T22:30:00.000Z');
    // 1 March, 00:30 in Berlin: a month would end 1 April, 00:30 (summer time by then, not 29 March); 30 days end 31 March.
    expect(await dueFor('2026-02-28T23:30:00Z')).toBe('2026-03-30T22:30:00.000Z');
    // 1 July, 00:30 in Berlin: a month is 31 days, the DSV's 30 come first: due 31 July.
    expect(await dueFor('2026-06-30T22:30:00Z')).toBe('2026-07-30T22:30:00.000Z');
  });

  it('hands back steps claimed just as it stops, instead of leaving them leased to a worker that is going', async () => {
    const worker = privacy.app.get(SagaWorker) as unknown as { shuttingDown: boolean; pass(): Promise<void>; pacer: { stop(): Promise<void>; start(): void } };
    // No pass of its own meanwhile (one claiming between the release and the check below): the one below is the stop's.
    await worker.pacer.stop();
    worker.shuttingDown = true;
    const owner = user();
    let r: { id: string };
    try {
      r = await request(owner, 'access');
      await worker.pass();
      const steps = await env.sql<{ status: string; attempts: number; lease_until: Date | null }>(`SELECT status, attempts, lease_until FROM privacy.request_steps WHERE request_id = $1`, [r.id]);
      expect(steps.length).toBeGreaterThan(0);
      for (const step of steps) expect(step).toEqual({ status: 'pending', attempts: 0, lease_until: null });
    } finally {
      worker.shuttingDown = false;
      worker.pacer.start();
    }
    expect((await settled(owner, r!.id)).status).toBe('completed');
  });

  it('erases everywhere, identity last, retrying a service that does not answer, asking again while one says there is more, and leaves only a tombstone', async () => {
    const tom = user();
    let chatTries = 0;
    fakes
      // Silent twice, then a first slice of a long history, then the rest.
      .on('chat', 'erase', () =>
        ++chatTries < 3
          ? 'silence'
          : chatTries === 3
            ? { service: 'chat', affected: { 'chat-history': 12, 'data-keys': 1 }, more: true }
            : { service: 'chat', affected: { 'chat-history': 30, 'data-keys': 0 } },
      )
      .on('billing', 'erase', () => ({ service: 'billing', affected: { invoices: 2 }, processorsNotified: ['stripe'] }))
      .on('identity', 'erase', () => ({ service: 'identity', affected: { account: 1 } }));
    const r = await request(tom, 'erasure');
    expect(r.steps.find((s) => s.service === 'identity')).toMatchObject({ action: 'erase', status: 'pending' });
    await waitFor(async () => (await env.sql(`SELECT 1 FROM privacy.requests WHERE id = $1 AND status = 'completed'`, [r.id])).length > 0, 'the erasure to complete', 20_000);

    const mine = fakes.calls.filter((c) => c.operation === 'erase' && c.input.userId === tom.userId);
    const identityAt = mine.find((c) => c.service === 'identity')!.at;
    expect(mine.filter((c) => c.service !== 'identity').every((c) => c.at < identityAt)).toBe(true);
    expect(mine.filter((c) => c.service === 'chat')).toHaveLength(4);
    expect(mine.every((c) => c.input.slices === true)).toBe(true);
    expect(mine.filter((c) => c.service === 'identity')).toHaveLength(1);

    // The subject's id is gone from privacy's tables; the tombstone holds a salted hash and counts.
    expect(await env.sql(`SELECT * FROM privacy.requests WHERE user_id = $1`, [tom.userId])).toEqual([]);
    const [stone] = await env.sql(`SELECT * FROM privacy.tombstones WHERE request_id = $1`, [r.id]);
    expect(stone.subject_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(stone.affected).toMatchObject({ chat: { 'chat-history': 42, 'data-keys': 1 }, identity: { account: 1 } });
    const dump = JSON.stringify(await env.sql(`SELECT * FROM privacy.tombstones`)) + JSON.stringify(await env.sql(`SELECT * FROM privacy.audit_log`));
    expect(dump).not.toContain(tom.userId);

    // Art. 19: Stripe confirmed through billing, Brevo delegated to notify.
    const view = (await rpc.call(PrivacyRpc.adminListRequests, { status: 'completed' }, { actor: compliance })).data.find((x) => x.id === r.id)!;
    expect(view.processorNotices.map((n) => [n.processor, n.status]).sort()).toEqual([
      ['brevo', 'delegated'],
      ['stripe', 'confirmed'],
    ]);
    expect(await privacy.app.get(AuditTrail).verify()).toMatchObject({ ok: true });
  });

  it('goes on with a long erasure at the next attempt after its slices per attempt, and reports what every attempt deleted', async () => {
    const una = user();
    let slices = 0;
    fakes
      // Five slices with more after them, then the last: three attempts of at most two calls each.
      .on('chat', 'erase', (input) =>
        input.userId !== una.userId ? { service: 'chat', affected: {} } : ++slices <= 5 ? { service: 'chat', affected: { 'chat-history': 100, 'data-keys': slices === 1 ? 1 : 0 }, more: true } : { service: 'chat', affected: { 'chat-history': 7, 'data-keys': 0 } },
      )
      .on('billing', 'erase', () => ({ service: 'billing', affected: { invoices: 0 }, processorsNotified: ['stripe'] }))
      .on('identity', 'erase', () => ({ service: 'identity', affected: { account: 1 } }));
    const r = await request(una, 'erasure');
    await waitFor(async () => (await env.sql(`SELECT 1 FROM privacy.requests WHERE id = $1 AND status = 'completed'`, [r.id])).length > 0, 'the erasure to complete', 20_000);

    expect(fakes.calls.filter((c) => c.service === 'chat' && c.operation === 'erase' && c.input.userId === una.userId)).toHaveLength(6);
    const [step] = await env.sql(`SELECT attempts, result, progress FROM privacy.request_steps WHERE request_id = $1 AND service = 'chat'`, [r.id]);
    expect(step).toMatchObject({ attempts: 3, result: { 'chat-history': 507, 'data-keys': 1 }, progress: null });
    const [stone] = await env.sql(`SELECT affected FROM privacy.tombstones WHERE request_id = $1`, [r.id]);
    expect(stone.affected.chat).toMatchObject({ 'chat-history': 507, 'data-keys': 1 });
  });

  it("keeps the subject's finished export when an erasure found nothing to erase, and voids it when one did", async () => {
    const ida = user();
    const found = (service: string) => (input: { userId: string; scope: string }) => ({ service, affected: { rows: input.userId === ida.userId && input.scope === 'private' ? 2 : 0 } });
    for (const service of ['identity', 'chat', 'billing', 'notify']) fakes.on(service, 'erase', found(service));
    const exported = await request(ida, 'access');
    expect((await settled(ida, exported.id)).status).toBe('completed');
    const download = () => rpc.call(PrivacyRpc.download, { id: exported.id, format: 'json' }, { actor: ida });

    // A workspace the subject never used: nothing anywhere, and the export they hold stays valid.
    const nothing = await request(ida, 'erasure', randomUUID());
    expect((await settled(ida, nothing.id)).status).toBe('completed');
    await expect(download()).resolves.toMatchObject({ parts: expect.any(Number) });

    // Their private workspace: data went, so the export that holds it goes too.
    const erased = await request(ida, 'erasure', 'private');
    expect((await settled(ida, erased.id)).status).toBe('completed');
    await expect(download()).rejects.toMatchObject({ status: 410 });
  });

  it('voids the export when a step whose first answer was lost finds nothing the second time (the first attempt erased it), and the tombstone says so', async () => {
    const ola = user();
    for (const service of ['identity', 'chat', 'billing', 'notify']) fakes.on(service, 'erase', () => ({ service, affected: { rows: 0 } }));
    const exported = await request(ola, 'access', 'private');
    expect((await settled(ola, exported.id)).status).toBe('completed');
    // chat erases, but its answer never arrives; asked again, it finds nothing left.
    let chatTries = 0;
    fakes.on('chat', 'erase', () => (++chatTries % 2 === 1 ? 'silence' : { service: 'chat', affected: { 'chat-history': 0 } }));
    const erased = await request(ola, 'erasure', 'private');
    expect((await settled(ola, erased.id)).status).toBe('completed');
    await expect(rpc.call(PrivacyRpc.download, { id: exported.id, format: 'json' }, { actor: ola })).rejects.toMatchObject({ status: 410 });

    // The whole account, the same way: the tombstone's counts come from the second attempt, and say so.
    const all = await request(ola, 'erasure');
    // Once done, the request no longer names them (they cannot read it): it is looked at directly.
    await waitFor(async () => (await env.sql(`SELECT 1 FROM privacy.requests WHERE id = $1 AND status = 'completed'`, [all.id])).length > 0, 'the erasure to complete', 15_000);
    const [stone] = await env.sql(`SELECT affected FROM privacy.tombstones WHERE request_id = $1`, [all.id]);
    expect(stone.affected.chat).toEqual({ 'chat-history': 0, attempts: 2 });
  });

  it('fails a request whose service refuses it as invalid, and tells compliance', async () => {
    const ann = user();
    fakes.on('notify', 'erase', () => ({ problem: { type: 'about:blank', title: 'Bad Request', status: 400, detail: 'scope not supported' } }));
    const r = await request(ann, 'erasure', 'private');
    const done = await settled(ann, r.id);
    expect(done).toMatchObject({ status: 'failed', failure: expect.stringContaining('scope not supported') });
    expect(done.steps.find((s) => s.service === 'identity')!.status).toBe('pending');
    const escalated = await lastEvent(env, 'privacy.request.escalated', (e: any) => e.data.requestId === r.id);
    expect(escalated.data).toMatchObject({ reason: 'failed', type: 'erasure' });
    fakes.on('notify', 'erase', () => ({ service: 'notify', affected: {} }));
  });

  it('fails an export whose collected data is more than one package holds, before reading it, and finishes the requests behind it', async () => {
    const [big, small] = [user(), user()];
    let answer: (() => void) | undefined;
    fakes.on('billing', 'export', (input: { userId: string }) =>
      input.userId === big.userId ? new Promise((resolve) => (answer = () => resolve({ service: 'billing', categories: {} }))) : { service: 'billing', categories: {} },
    );
    try {
      const r = await request(big, 'access');
      await waitFor(async () => (answer ? true : undefined), 'billing to be asked');
      // What the other services sent weighs more than PRIVACY_EXPORT_MAX_BYTES (the check reads sizes, not content).
      await env.sql(`INSERT INTO privacy.export_parts (request_id, service, sealed) VALUES ($1, 'zz-weighty', decode(repeat('00', 1100000), 'hex'))`, [r.id]);
      answer!();
      const failed = await settled(big, r.id);
      expect(failed.status).toBe('failed');
      expect(await env.sql(`SELECT failure FROM privacy.requests WHERE id = $1`, [r.id])).toEqual([{ failure: expect.stringContaining('PRIVACY_EXPORT_MAX_BYTES') }]);
      expect(await env.sql(`SELECT 1 FROM privacy.export_parts WHERE request_id = $1`, [r.id])).toEqual([]);
      // Compliance hears of it; the next request is not held up.
      expect(await env.sql(`SELECT 1 FROM privacy.outbox WHERE type = 'privacy.request.escalated' AND payload->'data'->>'requestId' = $1`, [r.id])).toHaveLength(1);
      const next = await request(small, 'access');
      expect((await settled(small, next.id)).status).toBe('completed');
    } finally {
      fakes.off('billing', 'export');
    }
  });

  it('fails an export whose service sends more than one package holds as the pages come, before they fill the worker, and asks for no more', async () => {
    const dora = user();
    const before = fakes.handlerOf('chat', 'export')!;
    // Page after page of 400 KB, without end: PRIVACY_EXPORT_MAX_BYTES (1 MB) is passed on the third.
    fakes.on('chat', 'export', (input: { userId: string; page: number }) =>
      input.userId === dora.userId
        ? { service: 'chat', categories: { 'chat-history': { messages: ['x'.repeat(400_000)] } }, nextPage: Number(input.page) + 1 }
        : { service: 'chat', categories: {} },
    );
    try {
      const r = await request(dora, 'access');
      expect((await settled(dora, r.id)).status).toBe('failed');
      expect(await env.sql(`SELECT failure FROM privacy.requests WHERE id = $1`, [r.id])).toEqual([{ failure: expect.stringMatching(/^chat could not export: the export passed \d+ bytes with chat's 3 pages, more than one package holds \(PRIVACY_EXPORT_MAX_BYTES 1000000\)/) }]);
      expect(fakes.callsTo('chat', 'export').filter((c) => c.input.userId === dora.userId)).toHaveLength(3);
    } finally {
      fakes.on('chat', 'export', before);
    }
  });

  it('counts the parts other services already sent towards the package limit: each part below it does not add up past it', async () => {
    const fritz = user();
    const before = fakes.handlerOf('chat', 'export')!;
    let asked = 0;
    let weighty = false;
    // chat is away until another service's 700 KB are in; when asked then, its 400 KB meet them.
    fakes.on('chat', 'export', (input: { userId: string }, call) => {
      if (input.userId !== fritz.userId) return before(input, call);
      asked++;
      return weighty
        ? { service: 'chat', categories: { 'chat-history': { messages: ['x'.repeat(400_000)] } } }
        : { problem: { type: 'about:blank', title: 'Service Unavailable', status: 503, detail: 'chat is starting' } };
    });
    try {
      const r = await request(fritz, 'access');
      await waitFor(async () => (asked >= 1 ? true : undefined), 'chat to be asked once');
      await env.sql(`INSERT INTO privacy.export_parts (request_id, service, sealed) VALUES ($1, 'zz-weighty', decode(repeat('00', 700000), 'hex'))`, [r.id]);
      weighty = true;
      expect((await settled(fritz, r.id)).status).toBe('failed');
      expect(await env.sql(`SELECT failure FROM privacy.requests WHERE id = $1`, [r.id])).toEqual([{ failure: expect.stringMatching(/^chat could not export: the export passed \d+ bytes with chat's 1 pages/) }]);
    } finally {
      fakes.on('chat', 'export', before);
    }
  });

  it('gives up a step whose worker keeps dying while it runs (its lease ran out three times), instead of taking every replica down with it', async () => {
    const emil = user();
    const before = fakes.handlerOf('chat', 'export')!;
    // chat never answers emil's export: the step is running (then retried) while the test plays the dying worker.
    fakes.on('chat', 'export', (input: { userId: string }) => (input.userId === emil.userId ? 'silence' : { service: 'chat', categories: {} }));
    // A second replica takes up the step whose lease ran out while the first still waits on its call.
    const second = await env.start(privacyService, FAST);
    try {
      const r = await request(emil, 'access');
      // Twice before, its lease ran out: now again, and the worker that takes it up gives it up.
      const failed = await waitFor(async () => {
        await env.sql(
          `UPDATE privacy.request_steps SET lease_until = now() - interval '1 second', progress = '{"lapsed": 2}' WHERE request_id = $1 AND service = 'chat' AND status = 'running'`,
          [r.id],
        );
        const [row] = await env.sql<{ status: string; failure: string | null }>(`SELECT status, failure FROM privacy.requests WHERE id = $1`, [r.id]);
        return row.status === 'failed' ? row : undefined;
      }, 'the request to fail');
      expect(failed.failure).toBe('chat could not export: its worker stopped 3 times while running it (a crash, or killed for its memory?)');
    } finally {
      await env.stop(second);
      fakes.on('chat', 'export', before);
    }
  });

  it('audits the start of each request once, naming the request and its subject', async () => {
    const anja = user();
    const r = await request(anja, 'access');
    await settled(anja, r.id);
    expect(await env.sql(`SELECT count(*)::int AS n, count(subject_hash)::int AS named FROM privacy.audit_log WHERE request_id = $1 AND action = 'request.started'`, [r.id])).toEqual([{ n: 1, named: 1 }]);
    expect(await env.sql(`SELECT 1 FROM privacy.audit_log WHERE action = 'request.started' AND request_id IS NULL`)).toEqual([]);
  });

  it('fails an export once however many services refuse it, and keeps none of what the others sent (parts and key go)', async () => {
    const bea = user();
    const refuse = (service: string) => () => ({ problem: { type: 'about:blank', title: 'Bad Request', status: 400, detail: `${service} refuses` } });
    fakes.on('billing', 'export', refuse('billing')).on('notify', 'export', refuse('notify'));
    try {
      const r = await request(bea, 'access');
      expect((await settled(bea, r.id)).status).toBe('failed');
      // Both refusals come in (the second finds the request failed already).
      await waitFor(async () => (await env.sql(`SELECT 1 FROM privacy.request_steps WHERE request_id = $1 AND status = 'failed'`, [r.id])).length === 2 || undefined, 'both refusals');
      expect(await env.sql(`SELECT 1 FROM privacy.audit_log WHERE request_id = $1 AND action = 'request.failed'`, [r.id])).toHaveLength(1);
      expect(await env.sql(`SELECT 1 FROM privacy.outbox WHERE type = 'privacy.request.escalated' AND payload->'data'->>'requestId' = $1`, [r.id])).toHaveLength(1);
      expect(await env.sql(`SELECT service FROM privacy.export_parts WHERE request_id = $1`, [r.id])).toEqual([]);
      expect(await env.sql(`SELECT wrapped_key FROM privacy.requests WHERE id = $1`, [r.id])).toEqual([{ wrapped_key: null }]);
    } finally {
      fakes.off('billing', 'export').off('notify', 'export');
    }
  });

  it('refuses a legal hold while an erasure step of the subject runs (it cannot be stopped), rather than say it keeps what is being deleted', async () => {
    const ida = user();
    let answer!: () => void;
    fakes.on('chat', 'erase', () => new Promise((resolve) => (answer = () => resolve({ service: 'chat', affected: { 'chat-history': 1 } }))));
    try {
      const r = await request(ida, 'erasure');
      await waitFor(async () => fakes.callsTo('chat', 'erase').some((c) => c.input.userId === ida.userId) || undefined, 'chat to be asked to erase');
      const refused = await rpc.call(PrivacyRpc.createLegalHold, { userId: ida.userId, reason: 'pending litigation 2026-18' }, { actor: compliance }).catch((e) => e);
      expect(refused).toMatchObject({ status: 409 });
      expect(String(refused.message)).toContain(r.id);
      expect(await env.sql(`SELECT 1 FROM privacy.legal_holds WHERE user_id = $1`, [ida.userId])).toEqual([]);
      answer();
      // Erased: the request no longer names them, so it is read as compliance would.
      await waitFor(async () => (await env.sql(`SELECT 1 FROM privacy.requests WHERE id = $1 AND status = 'completed'`, [r.id])).length > 0 || undefined, 'the erasure to complete', 15_000);
    } finally {
      fakes.off('chat', 'erase');
    }
  });

  it('refuses a legal hold also while an erasure step begun waits to go on (a service erasing in slices may have deleted part, and shredded the key)', async () => {
    const eva = user();
    fakes.on('chat', 'erase', () => 'silence');
    try {
      const r = await request(eva, 'erasure');
      await waitFor(
        async () => (await env.sql(`SELECT 1 FROM privacy.request_steps WHERE request_id = $1 AND service = 'chat' AND status = 'pending' AND attempts > 0`, [r.id])).length > 0 || undefined,
        'the chat step to wait for its next attempt',
        15_000,
      );
      const refused = await rpc.call(PrivacyRpc.createLegalHold, { userId: eva.userId, reason: 'pending litigation 2026-19' }, { actor: compliance }).catch((e) => e);
      expect(refused).toMatchObject({ status: 409 });
      expect(await env.sql(`SELECT 1 FROM privacy.legal_holds WHERE user_id = $1`, [eva.userId])).toEqual([]);
      fakes.on('chat', 'erase', () => ({ service: 'chat', affected: { 'chat-history': 1 } }));
      await waitFor(async () => (await env.sql(`SELECT 1 FROM privacy.requests WHERE id = $1 AND status = 'completed'`, [r.id])).length > 0 || undefined, 'the erasure to complete', 20_000);
    } finally {
      fakes.off('chat', 'erase');
    }
  });

  it('refuses a legal hold once a service has finished its part of the erasure, also while identity\'s last step has not begun (the data is gone, the subject told)', async () => {
    const vera = user();
    fakes.on('identity', 'erase', () => 'silence');
    try {
      const r = await request(vera, 'erasure');
      await waitFor(
        async () => (await env.sql(`SELECT 1 FROM privacy.request_steps WHERE request_id = $1 AND service = 'identity' AND attempts > 0`, [r.id])).length > 0 || undefined,
        'the first phase to finish and identity to be asked',
        15_000,
      );
      // As in the moment between the first phase's end and identity's first attempt.
      await env.sql(`UPDATE privacy.request_steps SET status = 'pending', attempts = 0, lease_until = NULL, next_attempt_at = now() + interval '1 hour' WHERE request_id = $1 AND service = 'identity'`, [r.id]);
      const refused = await rpc.call(PrivacyRpc.createLegalHold, { userId: vera.userId, reason: 'pending litigation 2026-20' }, { actor: compliance }).catch((e) => e);
      expect(refused).toMatchObject({ status: 409 });
      expect(String(refused.message)).toContain(r.id);
      expect(await env.sql(`SELECT 1 FROM privacy.legal_holds WHERE user_id = $1`, [vera.userId])).toEqual([]);
      fakes.on('identity', 'erase', () => ({ service: 'identity', affected: { account: 1 } }));
      await env.sql(`UPDATE privacy.request_steps SET next_attempt_at = now() WHERE request_id = $1 AND service = 'identity'`, [r.id]);
      await waitFor(async () => (await env.sql(`SELECT 1 FROM privacy.requests WHERE id = $1 AND status = 'completed'`, [r.id])).length > 0 || undefined, 'the erasure to complete', 20_000);
      // Done now (the stand-in identity still says the account exists, as one asked a moment before would have):
      // no hold on what is gone, which would keep the erased id for ever, and no new request of theirs.
      const late = await rpc.call(PrivacyRpc.createLegalHold, { userId: vera.userId, reason: 'pending litigation 2026-20' }, { actor: compliance }).catch((e) => e);
      expect({ status: late.status, message: late.message }).toEqual({ status: 409, message: 'This account was erased: there is nothing left to hold' });
      await expect(request(vera, 'access')).rejects.toMatchObject({ status: 410 });
      expect(await env.sql(`SELECT 1 FROM privacy.legal_holds WHERE user_id = $1`, [vera.userId])).toEqual([]);
    } finally {
      fakes.off('identity', 'erase');
    }
  });

  it('holds an erasure while a legal hold stands and finishes it once released', async () => {
    const max = user();
    const hold = await rpc.call(PrivacyRpc.createLegalHold, { userId: max.userId, reason: 'pending litigation 2026-17' }, { actor: compliance });
    const r = await request(max, 'erasure');
    await new Promise((res) => setTimeout(res, 600));
    const waiting = await rpc.call(PrivacyRpc.getRequest, { id: r.id }, { actor: max });
    expect(waiting).toMatchObject({ status: 'received', suspended: true });
    expect(fakes.calls.filter((c) => c.input.userId === max.userId && c.operation !== 'subject')).toEqual([]); // only asked whether the account exists, when the hold was placed
    await rpc.call(PrivacyRpc.releaseLegalHold, { id: hold.id }, { actor: compliance });
    await waitFor(async () => (await env.sql(`SELECT 1 FROM privacy.requests WHERE id = $1 AND status = 'completed'`, [r.id])).length > 0, 'the erasure after release', 15_000);
  });

  it('lets no compliance officer place or release a legal hold on their own account: another one does', async () => {
    const officer: Actor = { userId: randomUUID(), platformRoles: ['compliance'] };
    await expect(rpc.call(PrivacyRpc.createLegalHold, { userId: officer.userId, reason: 'my own case' }, { actor: officer })).rejects.toMatchObject({ status: 403 });
    const hold = await rpc.call(PrivacyRpc.createLegalHold, { userId: officer.userId, reason: 'audit of the officer 2026-3' }, { actor: compliance });
    await expect(rpc.call(PrivacyRpc.releaseLegalHold, { id: hold.id }, { actor: officer })).rejects.toMatchObject({ status: 403 });
    expect(await env.sql(`SELECT released_at FROM privacy.legal_holds WHERE id = $1`, [hold.id])).toEqual([{ released_at: null }]);
    await expect(rpc.call(PrivacyRpc.releaseLegalHold, { id: hold.id }, { actor: compliance })).resolves.toMatchObject({ releasedBy: compliance.userId });
  });

  it('keeps its outbox and inbox by the housekeeping every service has (privacy had none: both grew for ever)', async () => {
    await env.sql(`INSERT INTO privacy.outbox (id, subject, type, payload, sent_at) VALUES (gen_random_uuid(), 'x', 'x', '{}', now() - interval '8 days')`);
    await env.sql(`INSERT INTO privacy.inbox (event_id, consumer, processed_at) VALUES (gen_random_uuid(), 'housekeeping', now() - interval '31 days')`);
    expect(await privacy.app.get(AgeRetentionService).purgeExpired()).toMatchObject({ outbox: 1, inbox: 1 });
  });

  it('refuses a second open request of the same kind', async () => {
    const eva = user();
    fakes.on('billing', 'export', () => 'silence');
    const first = await request(eva, 'access');
    await expect(request(eva, 'access')).rejects.toMatchObject({ status: 409 });
    fakes.on('billing', 'export', () => ({ service: 'billing', categories: {} }));
    await settled(eva, first.id);
  });

  it('takes another restriction of the same scope only once the first is lifted: it stands after it completed', async () => {
    const rudi = user();
    const first = await request(rudi, 'restriction');
    expect((await settled(rudi, first.id)).status).toBe('completed');
    await expect(request(rudi, 'restriction')).rejects.toMatchObject({ status: 409, message: expect.stringContaining(first.id) });
    // Another scope is another request.
    expect((await request(rudi, 'restriction', 'private')).type).toBe('restriction');
  });

  it('tells services of a restriction and an objection by event, each step done once its service acted on the event', async () => {
    const ida = user();
    // chat has not yet acted on it (its consumer is behind): its step waits, the others complete.
    let chatActed = false;
    fakes.on('chat', 'handled', () => ({ service: 'chat', handled: chatActed, consumers: 1 }));
    try {
      const restriction = await request(ida, 'restriction');
      expect(restriction.steps).toHaveLength(4);
      const restricted = await lastEvent(env, 'privacy.subject.restricted', (e: any) => e.data.requestId === restriction.id);
      expect(restricted.data).toMatchObject({ userId: ida.userId, scope: 'all' });
      const stepsOf = async () => Object.fromEntries((await rpc.call(PrivacyRpc.getRequest, { id: restriction.id }, { actor: ida })).steps.map((s) => [s.service, s.status]));
      await waitFor(async () => ((await stepsOf()).billing === 'completed' ? true : undefined), 'the other services acted');
      await waitFor(async () => (fakes.callsTo('chat', 'handled').filter((c) => c.input.eventId === restricted.id).length >= 2 ? true : undefined), 'chat asked again');
      expect(await stepsOf()).toMatchObject({ chat: expect.stringMatching(/pending|running/), billing: 'completed', notify: 'completed', identity: 'completed' });
      expect((await rpc.call(PrivacyRpc.getRequest, { id: restriction.id }, { actor: ida })).status).toBe('in_progress');
      expect(fakes.callsTo('notify', 'handled').find((c) => c.input.eventId === restricted.id)?.input).toEqual({ eventId: restricted.id, type: 'privacy.subject.restricted' });
      chatActed = true;
      expect((await settled(ida, restriction.id)).status).toBe('completed');
      const audited = await env.sql(`SELECT details FROM privacy.audit_log WHERE request_id = $1 AND action = 'step.completed'`, [restriction.id]);
      expect(audited.map((r: any) => r.details.service).sort()).toEqual(['billing', 'chat', 'identity', 'notify']);
    } finally {
      fakes.off('chat', 'handled');
    }
    const objection = await request(ida, 'objection');
    expect(objection.steps.map((s) => s.service).sort()).toEqual(['identity', 'notify']);
    const objected = await lastEvent(env, 'privacy.subject.objected', (e: any) => e.data.requestId === objection.id);
    expect(objected.data.categories.sort()).toEqual(['delivery-log', 'login-audit', 'suppression-list']);
  });

  it('keeps an objection in progress until compliance decides it, lists it as awaiting a decision, and tells the subject the outcome and why', async () => {
    const otto = user();
    const objection = await request(otto, 'objection');
    await waitFor(async () => (await env.sql(`SELECT 1 FROM privacy.request_steps WHERE request_id = $1 AND status <> 'completed'`, [objection.id])).length === 0 || undefined, 'the services told');
    // Several passes of the worker later, the request still waits for its decision.
    await new Promise((r) => setTimeout(r, 300));
    const waiting = await rpc.call(PrivacyRpc.getRequest, { id: objection.id }, { actor: otto });
    expect(waiting).toMatchObject({ status: 'in_progress', completedAt: null, decision: null });
    const awaiting = async () => (await rpc.call(PrivacyRpc.adminListRequests, { awaiting: 'decision', limit: 100 }, { actor: compliance })).data.map((r) => r.id);
    expect(await awaiting()).toContain(objection.id);

    const reason = 'Die Anmeldeprotokolle dienen nur der Abwehr von Angriffen auf Ihr Konto; sie werden nach 90 Tagen gelöscht.';
    const decided = await rpc.call(PrivacyRpc.decide, { id: objection.id, decision: 'reject', reason }, { actor: compliance });
    expect(decided).toMatchObject({ status: 'completed', decision: { outcome: 'reject', reason, tookEffectAt: expect.any(String) } });
    expect(decided.decision!.takesEffectAt).toBe(decided.decision!.decidedAt);
    expect((await rpc.call(PrivacyRpc.getRequest, { id: objection.id }, { actor: otto })).decision?.reason).toBe(reason);
    const told = await lastEvent(env, 'privacy.request.decided', (e: any) => e.data.requestId === objection.id);
    expect(told.data).toMatchObject({ userId: otto.userId, type: 'objection', decision: 'reject', reason });
    expect(await awaiting()).not.toContain(objection.id);
    // A rejection stops nothing: no service is told to.
    expect(await env.sql(`SELECT 1 FROM privacy.outbox WHERE type = 'privacy.subject.objection-upheld' AND payload->'data'->>'requestId' = $1`, [objection.id])).toEqual([]);
  });

  it('lifts a restriction only after the subject was told: the decision is mailed first, processing stays restricted for the notice period, then the worker lifts it (audited)', async () => {
    const rosa = user();
    const restriction = await request(rosa, 'restriction');
    await settled(rosa, restriction.id);
    const decided = await rpc.call(PrivacyRpc.decide, { id: restriction.id, decision: 'lift', reason: 'Ihre Angaben sind geprüft und richtig.' }, { actor: compliance });
    const { decidedAt, takesEffectAt, tookEffectAt } = decided.decision!;
    // The default notice: 72 hours.
    expect(Date.parse(takesEffectAt) - Date.parse(decidedAt)).toBe(72 * 3_600_000);
    expect(tookEffectAt).toBeNull();
    const told = await lastEvent(env, 'privacy.request.decided', (e: any) => e.data.requestId === restriction.id);
    expect(told.data).toMatchObject({ type: 'restriction', decision: 'lift', takesEffectAt });
    await new Promise((r) => setTimeout(r, 300));
    expect(await env.sql(`SELECT 1 FROM privacy.outbox WHERE type = 'privacy.subject.restriction-lifted' AND payload->'data'->>'requestId' = $1`, [restriction.id])).toEqual([]);
    expect((await retentionRun()).heldUserIds).toContain(rosa.userId);
    // A second decision is refused while the lift waits.
    await expect(rpc.call(PrivacyRpc.decide, { id: restriction.id, decision: 'lift', reason: 'again' }, { actor: compliance })).rejects.toMatchObject({ status: 409 });

    // The notice period runs out.
    await env.sql(`UPDATE privacy.requests SET takes_effect_at = now() - interval '1 second' WHERE id = $1`, [restriction.id]);
    const lifted = await lastEvent(env, 'privacy.subject.restriction-lifted', (e: any) => e.data.requestId === restriction.id);
    expect(lifted.data).toMatchObject({ userId: rosa.userId, scope: 'all' });
    expect(told.occurredAt <= lifted.occurredAt).toBe(true);
    expect((await rpc.call(PrivacyRpc.getRequest, { id: restriction.id }, { actor: rosa })).decision?.tookEffectAt).toEqual(expect.any(String));
    expect(await env.sql(`SELECT 1 FROM privacy.audit_log WHERE request_id = $1 AND action = 'restriction.lifted'`, [restriction.id])).toHaveLength(1);
    expect((await retentionRun()).heldUserIds).not.toContain(rosa.userId);
  });

  const retentionRun = async () => {
    const { id } = await rpc.call(PrivacyRpc.startRetentionRun, { dryRun: true }, { actor: compliance });
    await waitFor(async () => ((await rpc.call(PrivacyRpc.getRetentionRun, { id }, { actor: compliance })).finishedAt ? true : undefined), 'the retention run');
    return fakes.callsTo('chat', 'retention').at(-1)!.input as { heldUserIds: string[] };
  };

  it('takes no other request of a subject while the erasure of their account runs, and keeps no words of a decision in the audit trail', async () => {
    const subject = user();
    fakes.on('chat', 'erase', (input) => (input.userId === subject.userId ? 'silence' : { service: 'chat', affected: {} }));
    const erasure = await request(subject, 'erasure');
    const refused = request(subject, 'restriction');
    await expect(refused).rejects.toMatchObject({ status: 409 });
    await expect(refused).rejects.toMatchObject({ message: expect.stringContaining(erasure.id) });
    fakes.on('chat', 'erase', () => ({ service: 'chat', affected: {} }));
    await waitFor(async () => (await env.sql(`SELECT 1 FROM privacy.requests WHERE id = $1 AND status = 'completed'`, [erasure.id])).length > 0 || undefined, 'the erasure', 20_000);

    const other = user();
    const objection = await request(other, 'objection');
    const reason = 'Frau Ida Beispiel, Kundennummer 4711, hat zwingende Gründe nicht widerlegt.';
    await rpc.call(PrivacyRpc.decide, { id: objection.id, decision: 'reject', reason }, { actor: compliance });
    const [entry] = await env.sql<{ details: Record<string, unknown> }>(`SELECT details FROM privacy.audit_log WHERE request_id = $1 AND action = 'request.reject'`, [objection.id]);
    expect(JSON.stringify(entry.details)).not.toContain('4711');
    expect(entry.details.reasonSha256).toMatch(/^[0-9a-f]{64}$/);
    // Words written to a person: no terminal escapes or text-direction tricks in the mail.
    for (const bad of ['Grund \u001b[31mrot', 'Grund \u202Eesrever', 'Glocke \u0007']) {
      await expect(rpc.call(PrivacyRpc.decide, { id: objection.id, decision: 'reject', reason: bad }, { actor: compliance })).rejects.toMatchObject({ status: 400 });
    }
  });

  it('ends the subject’s other open requests as failed, audited, when their erasure completes', async () => {
    const subject = user();
    // chat's export does not answer for this subject: the access request is still open when the erasure finishes.
    fakes.on('chat', 'export', (input) => (input.userId === subject.userId ? 'silence' : { service: 'chat', categories: {} }));
    const access = await request(subject, 'access');
    await waitFor(async () => (await env.sql(`SELECT 1 FROM privacy.request_steps WHERE request_id = $1 AND service = 'chat' AND attempts >= 1`, [access.id])).length > 0, 'the export tried');
    const erasure = await request(subject, 'erasure');
    await waitFor(async () => (await env.sql(`SELECT 1 FROM privacy.requests WHERE id = $1 AND status = 'completed'`, [erasure.id])).length > 0, 'the erasure', 20_000);
    const [row] = await env.sql(`SELECT status, user_id, failure FROM privacy.requests WHERE id = $1`, [access.id]);
    expect(row).toEqual({ status: 'failed', user_id: null, failure: expect.stringContaining('erased') });
    expect(await env.sql(`SELECT 1 FROM privacy.request_steps WHERE request_id = $1 AND status IN ('pending', 'running')`, [access.id])).toEqual([]);
    expect(await env.sql(`SELECT 1 FROM privacy.audit_log WHERE request_id = $1 AND action = 'request.failed'`, [access.id])).toHaveLength(1);
    fakes.on('chat', 'export', () => ({ service: 'chat', categories: {} }));
  });

  it('holds a subject from retention while their restriction stands, and no longer once it is lifted', async () => {
    const subject = user();
    const restriction = await request(subject, 'restriction');
    await waitFor(async () => (await env.sql(`SELECT 1 FROM privacy.requests WHERE id = $1 AND status = 'completed'`, [restriction.id])).length > 0, 'the restriction');
    expect((await retentionRun()).heldUserIds).toContain(subject.userId);
    await rpc.call(PrivacyRpc.decide, { id: restriction.id, decision: 'lift', reason: 'accuracy verified' }, { actor: compliance });
    await env.sql(`UPDATE privacy.requests SET takes_effect_at = now() WHERE id = $1`, [restriction.id]);
    await waitFor(async () => (await env.sql(`SELECT 1 FROM privacy.requests WHERE id = $1 AND took_effect_at IS NOT NULL`, [restriction.id])).length > 0 || undefined, 'the lift');
    expect((await retentionRun()).heldUserIds).not.toContain(subject.userId);
  });

  it('records no rectification that arrives after the subject was erased', async () => {
    const subject = user();
    const erasure = await request(subject, 'erasure');
    await waitFor(async () => (await env.sql(`SELECT 1 FROM privacy.requests WHERE id = $1 AND status = 'completed'`, [erasure.id])).length > 0, 'the erasure', 20_000);
    const requests = privacy.app.get(RequestsService);
    await privacy.app.get(DataSource).transaction((em) => requests.recordRectification(em, subject.userId, ['email'], randomUUID()));
    expect(await env.sql(`SELECT 1 FROM privacy.requests WHERE user_id = $1`, [subject.userId])).toEqual([]);
  });
  it('pages a subject’s requests without skipping those created in the same instant', async () => {
    const subject: Actor = { userId: randomUUID(), platformRoles: [] };
    // One statement: now() is the same for all three rows, to the microsecond.
    await env.sql(
      `INSERT INTO privacy.requests (id, user_id, subject_hash, type, scope, status, due_at)
       SELECT gen_random_uuid(), $1, 'h', 'access', 'all', 'completed', now() + interval '1 month' FROM generate_series(1, 3)`,
      [subject.userId],
    );
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await rpc.call(PrivacyRpc.listRequests, { limit: 1, ...(cursor ? { cursor } : {}) }, { actor: subject });
      seen.push(...page.data.map((r) => r.id));
      cursor = page.nextCursor ?? undefined;
    } while (cursor && seen.length < 10);
    expect(new Set(seen).size).toBe(3);
    expect(seen).toHaveLength(3);
  });
});
