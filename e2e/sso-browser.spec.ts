import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { decodeJwt } from 'jose';
import { gatewayService } from '@ally/gateway';
import { identityService } from '@ally/identity';
import { createTestEnv, type TestEnv } from '@ally/testing';
import { CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, signInAtProvider, startProvider } from '../services/identity/test/oidc-provider.js';
import { expectProblem } from './problem-assertions.js';

/** Single sign-on through the gateway finishes only in the browser that started it (its cookie). */
describe('single sign-on through the gateway', () => {
  let env: TestEnv;
  let op: Awaited<ReturnType<typeof startProvider>>;
  let gateway: string;

  beforeAll(async () => {
    op = await startProvider();
    env = await createTestEnv();
    await env.start(identityService, {
      SSO_PROVIDERS: JSON.stringify([{ id: 'local', issuer: op.issuer, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUri: REDIRECT_URI, allowInsecure: true }]),
    });
    // The callback URL identity checks is the public base + the path the browser came back to.
    gateway = (await env.start(gatewayService, { PUBLIC_BASE_URL: new URL(REDIRECT_URI).origin })).url;
  });

  afterAll(async () => {
    await env?.close();
    await op?.close();
  });

  /** /start as a browser would: the provider's URL and the cookie the gateway set. */
  const start = async () => {
    const res = await fetch(`${gateway}/v1/auth/sso/local/start`, { redirect: 'manual' });
    expect(res.status).toBe(302);
    const [cookie] = res.headers.getSetCookie();
    expect(cookie).toMatch(/^ally_sso_local=[^;]+; Path=\/v1\/auth\/sso\/local\/callback; Max-Age=600; HttpOnly; SameSite=Lax$/);
    return { authorizationUrl: res.headers.get('location')!, cookie: cookie.split(';')[0] };
  };
  const callback = (url: string, cookie?: string) => {
    const back = new URL(url);
    return fetch(`${gateway}${back.pathname}${back.search}`, { headers: cookie ? { cookie } : {} }).then(async (res) => ({ status: res.status, headers: res.headers, body: (await res.json()) as any }));
  };

  it('signs in the browser that started it, and spends its cookie', async () => {
    const { authorizationUrl, cookie } = await start();
    const res = await callback(await signInAtProvider(authorizationUrl, 'sub-lena'), `theme=dark; ${cookie}`);
    expect(res.status).toBe(200);
    expect(decodeJwt(res.body.accessToken).sub).toEqual(expect.any(String));
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.headers.getSetCookie()).toEqual(['ally_sso_local=; Path=/v1/auth/sso/local/callback; Max-Age=0; HttpOnly; SameSite=Lax']);
  });

  it("refuses a callback brought by another browser (a leaked URL, or login CSRF with the attacker's own attempt), and redeems nothing", async () => {
    const mine = await start();
    const theirs = await start();
    const callbackUrl = await signInAtProvider(theirs.authorizationUrl, 'sub-jonas');
    for (const cookie of [undefined, mine.cookie, 'ally_sso_local=%E0%A4%A']) {
      const refused = await callback(callbackUrl, cookie);
      expectProblem(refused, 400);
      expect(refused.body.detail).toMatch(/must finish in the browser that started it/);
    }
    // The attempt is still there for its own browser.
    expect((await callback(callbackUrl, theirs.cookie)).status).toBe(200);
  });

  it("sets its cookie for the callback under the public base URL's own path", async () => {
    const below = (await env.start(gatewayService, { PUBLIC_BASE_URL: 'https://ally.example.eu/app' })).url;
    const res = await fetch(`${below}/v1/auth/sso/local/start`, { redirect: 'manual' });
    expect(res.headers.getSetCookie()[0]).toMatch(/; Path=\/app\/v1\/auth\/sso\/local\/callback; Max-Age=600; HttpOnly; SameSite=Lax; Secure$/);
  });
});
