import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { identityService } from '@ally/identity';
import { confirmEmail, waitFor } from '@ally/testing';
import { startPlatformWorld, type PlatformWorld } from './platform-world.js';

const PASSWORD = 'Schwalben über dem Deich';

describe('retprobe b', () => {
  let world: PlatformWorld;
  let token: string;

  const register = async (email: string) => {
    const r = await world.http.post('/v1/auth/register', { email, password: PASSWORD, firstName: 'Rita', lastName: 'Rahn', locale: 'en' });
    expect(r.status).toBe(201);
    await confirmEmail(world.env, r.body.user.id);
    return r.body as { user: { id: string }; accessToken: string };
  };
  const start = async (body: unknown) => {
    const r = await world.http.post('/v1/admin/privacy/retention-runs', body, token);
    expect(r.status).toBe(202);
    return r.body.id as string;
  };
  const wait = (id: string) =>
    waitFor(async () => {
      const g = await world.http.get(`/v1/admin/privacy/retention-runs/${id}`, token);
      return g.body.status === 'completed' || g.body.status === 'failed' ? g.body : undefined;
    }, 'run', 60_000);
  const put = (body: unknown) => world.http.request('PUT', '/v1/admin/privacy/retention-policies', { body, token });

  beforeAll(async () => {
    world = await startPlatformWorld({ gateway: true, privacy: { RETENTION_RPC_TIMEOUT_MS: '4000' } });
    const email = `cora-${randomUUID().slice(0, 8)}@ally.example`;
    await register(email);
    await identityService.commands!['grant-role'](world.services.identity.app, [email, 'compliance']);
    token = (await world.http.post('/v1/auth/login', { email, password: PASSWORD })).body.accessToken;
  }, 120_000);

  afterAll(async () => {
    await world?.close();
  });

  it('chat-history: compliance period vs org chatRetentionDays', async () => {
    const { env, http } = world;
    const u = await register(`o-${randomUUID().slice(0, 6)}@example.eu`);
    const orgId = (await http.post('/v1/orgs', { name: 'Kurz GmbH' }, u.accessToken)).body.id;
    expect((await http.patch(`/v1/orgs/${orgId}/policy`, { chatRetentionDays: 7 }, u.accessToken)).status).toBe(200);
    await waitFor(async () => (await env.sql(`SELECT 1 FROM chat.org_policies WHERE org_id = $1 AND chat_retention_days = 7`, [orgId])).length > 0, 'replica');
    const ids: Record<string, string> = {};
    for (const [tag, ws, days] of [['org30', orgId, 30], ['org3', orgId, 3], ['priv30', 'private', 30]] as const) {
      ids[tag] = randomUUID();
      await env.sql(`INSERT INTO chat.conversations (id, user_id, workspace, updated_at) VALUES ($1, $2, $3, now() - make_interval(days => $4))`, [ids[tag], u.user.id, ws, days]);
    }
    const r = await put({ service: 'chat', category: 'chat-history', retentionDays: 365 });
    console.log('PUT chat 365', r.status);
    const run = await wait(await start({ dryRun: false, categories: ['chat-history'] }));
    console.log('RUN chat', JSON.stringify(run.results), run.status);
    const left = await env.sql(`SELECT id FROM chat.conversations WHERE user_id = $1`, [u.user.id]);
    console.log('LEFT', JSON.stringify(Object.entries(ids).filter(([, id]) => left.some((l: any) => l.id === id)).map(([t]) => t)));
    await put({ service: 'chat', category: 'chat-history', retentionDays: null });
  });

  it('two runs at once', async () => {
    const { env } = world;
    const u = await register(`ov-${randomUUID().slice(0, 6)}@example.eu`);
    await env.sql(`INSERT INTO identity.login_audit (user_id, ip, succeeded, method, occurred_at) SELECT $1, '192.0.2.1', true, 'password', now() - interval '40 days' FROM generate_series(1, 30000)`, [u.user.id]);
    const [a, b] = await Promise.all([start({ dryRun: false }), start({ dryRun: false })]);
    const [ra, rb] = [await wait(a), await wait(b)];
    for (const r of [ra, rb]) console.log('OVERLAP', r.status, r.startedAt, r.finishedAt, JSON.stringify(r.results.filter((x: any) => x.category === 'login-audit')));
    const c = await start({ dryRun: true });
    console.log('third', JSON.stringify((await wait(c)).status));
  });

  it('many holds', async () => {
    const { env } = world;
    await env.sql(`INSERT INTO privacy.legal_holds (id, user_id, subject_hash, reason, created_by) SELECT gen_random_uuid(), gen_random_uuid(), 'h', 'bulk', gen_random_uuid() FROM generate_series(1, 30000)`);
    const r = await wait(await start({ dryRun: true }));
    console.log('MANY HOLDS', r.status, r.heldUsers, JSON.stringify(r.errors).slice(0, 800), r.results.length);
    await env.sql(`DELETE FROM privacy.legal_holds WHERE reason = 'bulk'`);
  });

  it('service down', async () => {
    const { env } = world;
    const u = await register(`sd-${randomUUID().slice(0, 6)}@example.eu`);
    await env.sql(`INSERT INTO identity.login_audit (user_id, ip, succeeded, method, occurred_at) VALUES ($1, '192.0.2.9', true, 'password', now() - interval '40 days')`, [u.user.id]);
    await env.stop(world.services.notify);
    const t0 = Date.now();
    const r = await wait(await start({ dryRun: false }));
    console.log('DOWN', Date.now() - t0, r.status, JSON.stringify(r.errors), JSON.stringify(r.results.filter((x: any) => x.affected > 0)));
    const audit = await env.sql(`SELECT details FROM privacy.audit_log WHERE action = 'retention-run.finished' ORDER BY seq DESC LIMIT 1`);
    console.log('DOWN AUDIT', JSON.stringify(audit));
  });
});
