import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { runInNewContext } from 'node:vm';
import { gatewayService } from '@ally/gateway';
import { identityService } from '@ally/identity';
import { createTestEnv, httpClient, lastEvent, type TestEnv } from '@ally/testing';

const PASSWORD = 'Kraniche über dem Feld';

/** Opens a page like a link scanner with a JS engine: loads it and runs its script, no user action. */
async function openOnly(base: string, script: string, path: string): Promise<string> {
  const url = new URL(path, base);
  const result = { textContent: '', style: {} as Record<string, string> };
  const page = (await (await fetch(url)).text()).match(/data-page="(\w+)"/)![1];
  runInNewContext(script, {
    URLSearchParams,
    location: { search: url.search, pathname: url.pathname },
    fetch: (p: string, init: RequestInit) => fetch(new URL(p, base), init),
    document: { body: { dataset: { page } }, getElementById: () => result, querySelector: () => ({ addEventListener() {}, querySelector: () => ({}) }) },
  });
  for (let i = 0; i < 100 && !result.textContent; i++) await new Promise((r) => setTimeout(r, 20));
  return result.textContent;
}

describe('scratch pages', () => {
  let env: TestEnv; let base: string; let http: ReturnType<typeof httpClient>; let script: string;
  beforeAll(async () => {
    env = await createTestEnv();
    await env.start(identityService);
    base = (await env.start(gatewayService, { AUTH_RATE_LIMIT_PER_MINUTE: '300', PUBLIC_BASE_URL: 'https://ally.example.eu' })).url;
    http = httpClient(base);
    script = await (await fetch(`${base}/web/app.js`)).text();
  });
  afterAll(async () => { await env?.close(); });

  it('page headers', async () => {
    for (const p of ['/reset-password?token=abc', '/privacy/requests/x/download', '/docs']) {
      const r = await fetch(`${base}${p}`);
      const h = Object.fromEntries(r.headers);
      console.log(p, r.status, { csp: h['content-security-policy'], xfo: h['x-frame-options'], rp: h['referrer-policy'], cc: h['cache-control'], hsts: h['strict-transport-security'], nosniff: h['x-content-type-options'] });
    }
    const head = await fetch(`${base}/reset-password?token=abc`, { method: 'HEAD' });
    console.log('HEAD', head.status, head.headers.get('cache-control'));
    const login = await fetch(`${base}/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    console.log('login cc', login.headers.get('cache-control'));
    for (const p of ['//evil.example/', '/privacy/requests/%2F%2Fevil.example/download/', '/privacy/requests/\\evil.example/download/', '/verify-email/?a=%0d%0aSet-Cookie:x=1']) {
      const r = await fetch(`${base}${p}`, { redirect: 'manual' });
      console.log('REDIR', p, r.status, r.headers.get('location'));
    }
  });

  it('verify link consumed by a JS-running prefetch; squatter keeps password + API key through the owner\'s reset', async () => {
    const victim = 'owner@squat.example.eu';
    const squat = (await http.post('/v1/auth/register', { email: victim, password: PASSWORD, firstName: 'Sam', lastName: 'Squat' })).body;
    const key = await http.post('/v1/me/api-keys', { name: 'k', workspace: 'private' }, squat.accessToken);
    console.log('key create unverified', key.status);
    const ev = await lastEvent<{ userId: string; verificationToken: string }>(env, 'identity.user.registered', (e) => e.data.userId === squat.user.id);
    // Plain GET (scanner without JS) does not consume
    await fetch(`${base}/verify-email?token=${encodeURIComponent(ev.data.verificationToken)}`);
    console.log('after GET verified?', (await http.get('/v1/me', squat.accessToken)).body.emailVerified);
    // Scanner that renders the page (runs its script) consumes it
    console.log('page says', await openOnly(base, script, `/verify-email?token=${encodeURIComponent(ev.data.verificationToken)}`));
    console.log('after page verified?', (await http.get('/v1/me', squat.accessToken)).body.emailVerified);
    // Real owner: forgot + reset
    await http.post('/v1/auth/password/forgot', { email: victim });
    const reset = await lastEvent<{ userId: string; resetToken: string }>(env, 'identity.password.reset-requested', (e) => e.data.userId === squat.user.id);
    console.log('reset', (await http.post('/v1/auth/password/reset', { token: reset.data.resetToken, password: 'Das ist jetzt meins 2026' })).status);
    const viaKey = await http.get('/v1/me', key.body.key);
    console.log('squatter key after owner reset', viaKey.status, viaKey.body?.email);
    console.log('owner lists keys', JSON.stringify((await http.get('/v1/me/api-keys', (await http.post('/v1/auth/login', { email: victim, password: 'Das ist jetzt meins 2026' })).body.accessToken)).body));
  });
});
describe('scratch metrics', () => {
  let env: TestEnv; let base: string;
  beforeAll(async () => {
    env = await createTestEnv();
    await env.start(identityService);
    base = (await env.start(gatewayService, { PUBLIC_BASE_URL: 'https://ally.example.eu' })).url;
  });
  afterAll(async () => { await env?.close(); });
  it('metrics/health on the public port', async () => {
    await fetch(`${base}/v1/orgs/0f8fad5b-d9cb-469f-a165-70867728950e`);
    await fetch(`${base}/verify-email?token=SECRET-TOKEN-123`);
    for (const p of ['/metrics', '/health/ready', '/health/live']) {
      const r = await fetch(`${base}${p}`);
      const t = await r.text();
      console.log(p, r.status, t.length, t.split('\n').filter((l) => !l.startsWith('#')).slice(0, 40).join('\n'));
      console.log('has token', t.includes('SECRET-TOKEN'), 'has uuid', t.includes('0f8fad5b'));
    }
  });
});
