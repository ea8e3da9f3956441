import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateKeyPairSync } from 'node:crypto';
import { decodeJwt } from 'jose';
// @ts-expect-error no types
import Provider from 'oidc-provider';
import { gatewayService } from '@ally/gateway';
import { identityService } from '@ally/identity';
import { confirmEmail, createTestEnv, httpClient, lastEvent, type TestEnv } from '@ally/testing';

const CLIENT_ID = 'ally';
const CLIENT_SECRET = 'a-client-secret-for-the-local-provider';
const REDIRECT_URI = 'http://localhost:3000/v1/auth/sso/local/callback';
const PASSWORD = 'Sommerwiese am Fluss 2026';

const accounts: Record<string, { email: string; email_verified: any; given_name: string; family_name: string }> = {
  'sub-owner': { email: 'owner@squat.example.eu', email_verified: true, given_name: 'Olga', family_name: 'Owner' },
  'sub-anna': { email: 'anna@sso.example.eu', email_verified: true, given_name: 'Anna', family_name: 'Schmidt' },
  'sub-unver': { email: 'victim@sso.example.eu', email_verified: false, given_name: 'Eve', family_name: 'Evil' },
  'sub-strver': { email: 'victim@sso.example.eu', email_verified: 'true', given_name: 'Eve', family_name: 'Evil' },
  'sub-verified-victim': { email: 'Victim@SSO.example.eu', email_verified: true, given_name: 'Eve', family_name: 'Evil' },
};

async function startProvider() {
  let provider: any;
  const server: Server = createServer((req, res) => {
    if (req.url?.startsWith('/interaction/')) interaction(req, res).catch((err: Error) => { res.statusCode = 500; res.end(err.message); });
    else provider.callback()(req, res);
  });
  async function interaction(req: IncomingMessage, res: ServerResponse) {
    const [, , uid, step] = new URL(req.url!, 'http://op').pathname.split('/');
    const details = await provider.interactionDetails(req, res);
    if (req.method === 'GET' && !step) { res.setHeader('content-type', 'application/json'); res.end(JSON.stringify({ uid, prompt: details.prompt.name })); return; }
    if (req.method === 'POST' && step === 'login') {
      let body = ''; for await (const chunk of req) body += chunk;
      const accountId = new URLSearchParams(body).get('login') ?? '';
      await provider.interactionFinished(req, res, { login: { accountId } }, { mergeWithLastSubmission: false }); return;
    }
    if (req.method === 'POST' && step === 'consent') {
      const { prompt, params, session, grantId } = details;
      const grant = grantId ? (await provider.Grant.find(grantId))! : new provider.Grant({ accountId: session!.accountId, clientId: params.client_id as string });
      const missing = prompt.details as any;
      if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
      if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
      await provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } }, { mergeWithLastSubmission: true }); return;
    }
    res.statusCode = 400; res.end('unexpected');
  }
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const signingKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  provider = new Provider(issuer, {
    clients: [{ client_id: CLIENT_ID, client_secret: CLIENT_SECRET, redirect_uris: [REDIRECT_URI], grant_types: ['authorization_code'], response_types: ['code'] }],
    pkce: { required: () => true },
    ttl: { AccessToken: 600, AuthorizationCode: 60, Grant: 600, IdToken: 600, Interaction: 600, Session: 600 },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_c: unknown, i: { uid: string }) => `/interaction/${i.uid}` },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['given_name', 'family_name'] },
    cookies: { keys: ['k'] },
    jwks: { keys: [{ ...signingKey, kid: 'op-key', use: 'sig', alg: 'RS256' }] },
    findAccount: (_c: unknown, sub: string) => {
      const a = accounts[sub];
      if (!a) return undefined;
      return { accountId: sub, claims: () => ({ sub, ...a }) };
    },
  });
  return { issuer, close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }) };
}

async function signInAtProvider(authorizationUrl: string, login: string): Promise<string> {
  const jar = new Map<string, string>();
  let url = new URL(authorizationUrl); let method = 'GET'; let body: string | undefined;
  for (let hop = 0; hop < 20; hop++) {
    const res = await fetch(url, { method, body, redirect: 'manual', headers: { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; '), ...(body !== undefined ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) } });
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const name = pair.slice(0, pair.indexOf('=')).trim(); const value = pair.slice(pair.indexOf('=') + 1).trim();
      const expired = attrs.some((a) => /^\s*expires=/i.test(a) && new Date(a.split('=')[1]).getTime() <= Date.now());
      if (!value || expired) jar.delete(name); else jar.set(name, value);
    }
    if (res.status >= 300 && res.status < 400) {
      const location = new URL(res.headers.get('location')!, url);
      if (location.href.startsWith(REDIRECT_URI)) return location.href;
      [url, method, body] = [location, 'GET', undefined]; continue;
    }
    if (res.status === 200 && url.pathname.startsWith('/interaction/') && method === 'GET') {
      const { prompt } = (await res.json()) as { prompt: string };
      url = new URL(`${url.pathname}/${prompt}`, url); method = 'POST'; body = prompt === 'login' ? new URLSearchParams({ login }).toString() : ''; continue;
    }
    throw new Error(`provider ${res.status} at ${method} ${url.href}: ${await res.text()}`);
  }
  throw new Error('too many');
}

describe('scratch sso via gateway', () => {
  let env: TestEnv; let op: Awaited<ReturnType<typeof startProvider>>; let base: string; let http: ReturnType<typeof httpClient>;
  beforeAll(async () => {
    op = await startProvider();
    env = await createTestEnv();
    await env.start(identityService, { SSO_PROVIDERS: JSON.stringify([{ id: 'local', issuer: op.issuer, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUri: REDIRECT_URI, allowInsecure: true }]) });
    base = (await env.start(gatewayService, { AUTH_RATE_LIMIT_PER_MINUTE: '300' })).url;
    http = httpClient(base);
  });
  afterAll(async () => { await env?.close(); await op?.close(); });

  const start = async () => {
    const res = await fetch(`${base}/v1/auth/sso/local/start`, { redirect: 'manual' });
    return { res, authorizationUrl: res.headers.get('location')! };
  };
  const toGateway = (cb: string) => { const u = new URL(cb); return `${base}${u.pathname}${u.search}`; };

  it('start + callback headers', async () => {
    const { res, authorizationUrl } = await start();
    console.log('START', res.status, Object.fromEntries(res.headers));
    const cb = await signInAtProvider(authorizationUrl, 'sub-anna');
    const r = await fetch(toGateway(cb));
    const body = await r.json();
    console.log('CALLBACK', r.status, Object.fromEntries(r.headers), Object.keys(body));
    const again = await fetch(toGateway(cb));
    console.log('REPLAY', again.status, await again.text());
  });

  it('idp error param reflected', async () => {
    const { authorizationUrl } = await start();
    const state = new URL(authorizationUrl).searchParams.get('state');
    const r = await fetch(`${base}/v1/auth/sso/local/callback?error=${encodeURIComponent('<img src=x onerror=alert(1)>')}&state=${state}&error_description=x`);
    console.log('ERR', r.status, r.headers.get('content-type'), await r.text());
  });

  it('unverified idp email vs existing accounts', async () => {
    const reg = await http.post('/v1/auth/register', { email: 'victim@sso.example.eu', password: PASSWORD, firstName: 'Vera', lastName: 'Victim' });
    expect(reg.status).toBe(201);
    await confirmEmail(env, reg.body.user.id);
    for (const login of ['sub-unver', 'sub-strver']) {
      const { authorizationUrl } = await start();
      const cb = await signInAtProvider(authorizationUrl, login);
      const r = await fetch(toGateway(cb));
      console.log('UNVER', login, r.status, (await r.text()).slice(0, 300));
    }
    const { authorizationUrl } = await start();
    const cb = await signInAtProvider(authorizationUrl, 'sub-verified-victim');
    const r = await fetch(toGateway(cb));
    const b = await r.json();
    console.log('VERIFIED-LINK', r.status, b.accessToken ? decodeJwt(b.accessToken).sub === reg.body.user.id : b);
    // password still works?
    console.log('PW-after', (await http.post('/v1/auth/login', { email: 'victim@sso.example.eu', password: PASSWORD })).status);
  });

  it('state from start reused on another provider path / tampered iss', async () => {
    const { authorizationUrl } = await start();
    const cb = new URL(await signInAtProvider(authorizationUrl, 'sub-anna'));
    cb.searchParams.set('iss', 'https://evil.example');
    const r = await fetch(toGateway(cb.href));
    console.log('ISS', r.status, (await r.text()).slice(0, 300));
    cb.searchParams.delete('iss');
    const r2 = await fetch(toGateway(cb.href));
    console.log('ISS-after', r2.status, (await r2.text()).slice(0, 300));
  });

  it('squatter verified by the link (page on load) then owner signs in by SSO', async () => {
    const squat = (await http.post('/v1/auth/register', { email: 'owner@squat.example.eu', password: PASSWORD, firstName: 'Sam', lastName: 'Squat' })).body;
    const key = (await http.post('/v1/me/api-keys', { name: 'k', workspace: 'private' }, squat.accessToken)).body;
    const ev = await lastEvent<{ userId: string; verificationToken: string }>(env, 'identity.user.registered', (e) => e.data.userId === squat.user.id);
    // exactly what app.js does on loading /verify-email?token=…
    console.log('verify', (await http.post('/v1/auth/verify-email', { token: ev.data.verificationToken })).status);
    const { authorizationUrl } = await start();
    const cb = await signInAtProvider(authorizationUrl, 'sub-owner');
    const r = await fetch(toGateway(cb));
    const b = await r.json();
    console.log('SSO lands in squatter account', r.status, decodeJwt(b.accessToken).sub === squat.user.id);
    console.log('squatter pw login', (await http.post('/v1/auth/login', { email: 'owner@squat.example.eu', password: PASSWORD })).status);
    console.log('squatter refresh', (await http.post('/v1/auth/refresh', { refreshToken: squat.refreshToken })).status);
    console.log('squatter key', (await http.get('/v1/me', key.key)).status);
  });
});
