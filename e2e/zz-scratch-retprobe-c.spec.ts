import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { identityService } from '@ally/identity';
import { confirmEmail, waitFor } from '@ally/testing';
import { startPlatformWorld, type PlatformWorld } from './platform-world.js';

const PASSWORD = 'Schwalben über dem Deich';

describe('retprobe c', () => {
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

  beforeAll(async () => {
    world = await startPlatformWorld({ gateway: true, privacy: { RETENTION_RPC_TIMEOUT_MS: '200' } });
    const email = `cora-${randomUUID().slice(0, 8)}@ally.example`;
    await register(email);
    await identityService.commands!['grant-role'](world.services.identity.app, [email, 'compliance']);
    token = (await world.http.post('/v1/auth/login', { email, password: PASSWORD })).body.accessToken;
  }, 120_000);

  afterAll(async () => {
    await world?.close();
  });

  it('category filter and org policy validation', async () => {
    const { env, http } = world;
    const u = await register(`f-${randomUUID().slice(0, 6)}@example.eu`);
    await env.sql(`INSERT INTO identity.login_audit (user_id, ip, succeeded, method, occurred_at) VALUES ($1, '192.0.2.5', true, 'password', now() - interval '40 days')`, [u.user.id]);
    await env.sql(`INSERT INTO identity.sessions (id, user_id, method, absolute_expires_at, revoked_at) VALUES (gen_random_uuid(), $1, 'probe-old', now() - interval '35 days', now() - interval '40 days')`, [u.user.id]);
    await env.sql(`INSERT INTO notify.deliveries (id, event_id, template, locale, user_id, recipient_hash, status, created_at) VALUES (gen_random_uuid(), gen_random_uuid(), 'probe', 'en', $1, 'x', 'delivered', now() - interval '40 days')`, [u.user.id]);
    const r = await wait(await start({ dryRun: false, categories: ['sessions'] }));
    console.log('FILTER', r.status, JSON.stringify(r.results), JSON.stringify(r.errors));
    console.log('left la', (await env.sql(`SELECT 1 FROM identity.login_audit WHERE ip='192.0.2.5'`)).length, 'ses', (await env.sql(`SELECT 1 FROM identity.sessions WHERE method='probe-old'`)).length, 'deliv', (await env.sql(`SELECT 1 FROM notify.deliveries WHERE template='probe'`)).length);
    const orgId = (await http.post('/v1/orgs', { name: 'Kurz GmbH' }, u.accessToken)).body.id;
    for (const v of [0, -1, 3651, 1e9, 1.5, '7']) {
      const p = await http.patch(`/v1/orgs/${orgId}/policy`, { chatRetentionDays: v }, u.accessToken);
      console.log('ORGPOL', v, p.status, JSON.stringify(p.body).slice(0, 250));
    }
  });

  it('slow service: timeout', async () => {
    const { env } = world;
    const u = await register(`t-${randomUUID().slice(0, 6)}@example.eu`);
    await env.sql(`INSERT INTO identity.login_audit (user_id, ip, succeeded, method, occurred_at) SELECT $1, '192.0.2.7', true, 'password', now() - interval '40 days' FROM generate_series(1, 60000)`, [u.user.id]);
    const r = await wait(await start({ dryRun: false, categories: ['login-audit'] }));
    console.log('TIMEOUT', r.status, JSON.stringify(r.results), JSON.stringify(r.errors));
    await new Promise((res) => setTimeout(res, 3000));
    console.log('rows left', (await env.sql(`SELECT count(*)::int n FROM identity.login_audit WHERE ip='192.0.2.7'`))[0].n);
    const again = await wait(await start({ dryRun: true, categories: ['login-audit'] }));
    console.log('DRY AFTER', again.status, JSON.stringify(again.results));
  });
});
