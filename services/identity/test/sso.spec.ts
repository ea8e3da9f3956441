import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateKeyPairSync } from 'node:crypto';
import { decodeJwt } from 'jose';
// @ts-expect-error oidc-provider ships no type declarations (and @types/oidc-provider is not installed)
import Provider from 'oidc-provider';
import { IdentityRpc, ProblemError } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { createTestEnv, lastEvent, type TestEnv } from '@ally/testing';
import { identityService } from '../src/index.js';

const CLIENT_ID = 'ally';
const CLIENT_SECRET = 'a-client-secret-for-the-local-provider';
const REDIRECT_URI = 'http://localhost:3000/v1/auth/sso/local/callback';

/** The people the local provider knows, by subject. */
const accounts: Record<string, { email: string; given_name: string; family_name: string }> = {
  'sub-anna': { email: 'Anna.Schmidt@example.eu', given_name: 'Anna', family_name: 'Schmidt' },
  'sub-jonas': { email: 'jonas.weber@example.eu', given_name: 'Jonas', family_name: 'Weber' },
  'sub-lena': { email: 'lena.vogel@example.eu', given_name: 'Lena', family_name: 'Vogel' },
  'sub-mira': { email: 'mira.brandt@example.eu', given_name: 'Mira', family_name: 'Brandt' },
  'sub-twice': { email: 'zwei.mal@example.eu', given_name: 'Zora', family_name: 'Zwilling' },
  'sub-markup': { email: 'markup@example.eu', given_name: 'R2-D2 <script>alert(1)</script>', family_name: 'Droid' },
  'sub-noaddress': { email: '  Not An Email  ', given_name: 'Nina', family_name: 'Nomail' },
};

/**
 * A real OpenID provider (oidc-provider) on http://127.0.0.1:<free port> with one
 * confidential client that must use PKCE. Login and consent are answered by two
 * small routes (what a login page would post), so a fetch-driven "browser" can
 * walk the whole authorization code flow.
 */
async function startProvider(): Promise<{ issuer: string; close: () => Promise<void> }> {
  let provider: any;
  const server: Server = createServer((req, res) => {
    if (req.url?.startsWith('/interaction/')) {
      interaction(req, res).catch((err: Error) => {
        res.statusCode = 500;
        res.end(err.message);
      });
    } else {
      provider.callback()(req, res);
    }
  });

  async function interaction(req: IncomingMessage, res: ServerResponse) {
    const [, , uid, step] = new URL(req.url!, 'http://op').pathname.split('/');
    const details = await provider.interactionDetails(req, res);
    if (details.uid !== uid) throw new Error('interaction cookie does not match the uid');
    if (req.method === 'GET' && !step) {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ uid, prompt: details.prompt.name }));
      return;
    }
    if (req.method === 'POST' && step === 'login' && details.prompt.name === 'login') {
      let body = '';
      for await (const chunk of req) body += chunk;
      const accountId = new URLSearchParams(body).get('login') ?? '';
      if (!accounts[accountId]) throw new Error(`unknown account ${accountId}`);
      await provider.interactionFinished(req, res, { login: { accountId } }, { mergeWithLastSubmission: false });
      return;
    }
    if (req.method === 'POST' && step === 'consent' && details.prompt.name === 'consent') {
      const { prompt, params, session, grantId } = details;
      const grant = grantId
        ? (await provider.Grant.find(grantId))!
        : new provider.Grant({ accountId: session!.accountId, clientId: params.client_id as string });
      const missing = prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[] };
      if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
      if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
      await provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } }, { mergeWithLastSubmission: true });
      return;
    }
    res.statusCode = 400;
    res.end(`unexpected ${req.method} ${req.url} at prompt ${details.prompt.name}`);
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const signingKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });

  const configuration = {
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        redirect_uris: [REDIRECT_URI],
        grant_types: ['authorization_code'],
        response_types: ['code'],
      },
    ],
    pkce: { required: () => true },
    // conformIdTokenClaims stays at its default (true): with an access token issued, the
    // ID token carries only sub, and email and names come from UserInfo (OIDC Core 5.4).
    ttl: { AccessToken: 600, AuthorizationCode: 60, Grant: 600, IdToken: 600, Interaction: 600, Session: 600 },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['given_name', 'family_name'] },
    cookies: { keys: ['local-provider-cookie-key'] },
    jwks: { keys: [{ ...signingKey, kid: 'op-key', use: 'sig', alg: 'RS256' }] },
    findAccount: (_ctx: unknown, sub: string) => {
      const account = accounts[sub];
      if (!account) return undefined;
      return { accountId: sub, claims: () => ({ sub, email: account.email, email_verified: true, given_name: account.given_name, family_name: account.family_name }) };
    },
  };
  provider = new Provider(issuer, configuration);
  return {
    issuer,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/**
 * A browser without a browser: follows redirects by hand, keeps the provider's
 * cookies, signs in as `login`, consents, and stops where the provider sends it
 * back to the redirect URI; answers that full URL.
 */
async function signInAtProvider(authorizationUrl: string, login: string): Promise<string> {
  const jar = new Map<string, string>();
  let url = new URL(authorizationUrl);
  let method = 'GET';
  let body: string | undefined;
  for (let hop = 0; hop < 20; hop++) {
    const res = await fetch(url, {
      method,
      body,
      redirect: 'manual',
      headers: {
        cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; '),
        ...(body !== undefined ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
      },
    });
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const name = pair.slice(0, pair.indexOf('=')).trim();
      const value = pair.slice(pair.indexOf('=') + 1).trim();
      const expired = attrs.some((a) => /^\s*expires=/i.test(a) && new Date(a.split('=')[1]).getTime() <= Date.now());
      if (!value || expired) jar.delete(name);
      else jar.set(name, value);
    }
    if (res.status >= 300 && res.status < 400) {
      const location = new URL(res.headers.get('location')!, url);
      if (location.href.startsWith(REDIRECT_URI)) return location.href;
      [url, method, body] = [location, 'GET', undefined];
      continue;
    }
    if (res.status === 200 && url.pathname.startsWith('/interaction/') && method === 'GET') {
      const { prompt } = (await res.json()) as { prompt: string };
      url = new URL(`${url.pathname}/${prompt}`, url);
      method = 'POST';
      body = prompt === 'login' ? new URLSearchParams({ login }).toString() : '';
      continue;
    }
    throw new Error(`The provider answered ${res.status} at ${method} ${url.href}: ${await res.text()}`);
  }
  throw new Error('Too many redirects at the provider');
}

describe('identity single sign-on against a local OpenID provider', () => {
  let env: TestEnv;
  let rpc: RpcClient;
  let op: Awaited<ReturnType<typeof startProvider>>;

  /** ssoStart → the provider's login and consent: the callback URL the browser would be sent to. */
  async function atProvider(login: string) {
    const { authorizationUrl } = await rpc.call(IdentityRpc.ssoStart, { provider: 'local' });
    return { authorizationUrl, callbackUrl: await signInAtProvider(authorizationUrl, login) };
  }

  /** atProvider, then ssoCallback with the full callback URL. */
  async function signIn(login: string) {
    const { authorizationUrl, callbackUrl } = await atProvider(login);
    return { authorizationUrl, callbackUrl, pair: await rpc.call(IdentityRpc.ssoCallback, { provider: 'local', callbackUrl }) };
  }

  beforeAll(async () => {
    op = await startProvider();
    env = await createTestEnv();
    await env.start(identityService, {
      SSO_PROVIDERS: JSON.stringify([
        { id: 'local', issuer: op.issuer, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUri: REDIRECT_URI, allowInsecure: true },
      ]),
    });
    rpc = new RpcClient(await env.nats(), env.prefix);
    await rpc.connect();
  });

  afterAll(async () => {
    await rpc?.close();
    await env?.close();
    await op?.close();
  });

  it('signs a new user in with authorization code + PKCE and creates the account from the claims', async () => {
    const { authorizationUrl, callbackUrl, pair } = await signIn('sub-anna');

    const auth = new URL(authorizationUrl);
    expect(auth.origin).toBe(op.issuer);
    expect(Object.fromEntries(auth.searchParams)).toMatchObject({
      client_id: CLIENT_ID,
      redirect_uri: REDIRECT_URI,
      response_type: 'code',
      code_challenge_method: 'S256',
      scope: 'openid email profile',
    });
    const callback = new URL(callbackUrl);
    expect(callback.searchParams.get('code')).toBeTruthy();
    expect(callback.searchParams.get('state')).toBe(auth.searchParams.get('state'));
    expect(callback.searchParams.get('iss')).toBe(op.issuer);

    expect(pair).toMatchObject({ tokenType: 'Bearer', expiresIn: expect.any(Number) });
    expect(pair.refreshToken).toEqual(expect.any(String));
    const [user] = await env.sql(`SELECT id, email, first_name, last_name, email_verified_at, password_hash FROM identity.users WHERE email = $1`, [
      'anna.schmidt@example.eu',
    ]);
    expect(user).toMatchObject({ first_name: 'Anna', last_name: 'Schmidt', password_hash: null });
    expect(user.email_verified_at).not.toBeNull();
    expect(decodeJwt(pair.accessToken).sub).toBe(user.id);
    expect(await env.sql(`SELECT provider, subject, user_id FROM identity.sso_identities`)).toEqual([
      { provider: 'local', subject: 'sub-anna', user_id: user.id },
    ]);
    // The state is single use and gone once consumed.
    expect(await env.sql(`SELECT state FROM identity.sso_states WHERE state = $1`, [auth.searchParams.get('state')])).toEqual([]);
  });

  it('signs the same subject in again as the same user', async () => {
    const first = await signIn('sub-anna');
    const second = await signIn('sub-anna');
    expect(decodeJwt(second.pair.accessToken).sub).toBe(decodeJwt(first.pair.accessToken).sub);
    expect(await env.sql(`SELECT id FROM identity.users WHERE email = $1`, ['anna.schmidt@example.eu'])).toHaveLength(1);
    expect(await env.sql(`SELECT subject FROM identity.sso_identities`)).toHaveLength(1);

    const other = await signIn('sub-jonas');
    expect(decodeJwt(other.pair.accessToken).sub).not.toBe(decodeJwt(first.pair.accessToken).sub);
  });

  it('redeems the code for the configured redirect URI whatever origin the callback reached identity on', async () => {
    const callbackUrl = new URL((await atProvider('sub-anna')).callbackUrl);
    const behindProxy = new URL(`http://gateway.internal:8080${callbackUrl.pathname}${callbackUrl.search}`);
    const pair = await rpc.call(IdentityRpc.ssoCallback, { provider: 'local', callbackUrl: behindProxy.href });
    const [user] = await env.sql(`SELECT id FROM identity.users WHERE email = $1`, ['anna.schmidt@example.eu']);
    expect(decodeJwt(pair.accessToken).sub).toBe(user.id);
  });

  it('answers 400 for a tampered or unknown state and does not redeem the code', async () => {
    const callbackUrl = new URL((await atProvider('sub-anna')).callbackUrl);
    const tampered = new URL(callbackUrl);
    tampered.searchParams.set('state', `${callbackUrl.searchParams.get('state')}x`);
    const call = rpc.call(IdentityRpc.ssoCallback, { provider: 'local', callbackUrl: tampered.href });
    await expect(call).rejects.toBeInstanceOf(ProblemError);
    await expect(call).rejects.toMatchObject({ status: 400 });

    const unknown = new URL(callbackUrl);
    unknown.searchParams.delete('state');
    await expect(rpc.call(IdentityRpc.ssoCallback, { provider: 'local', callbackUrl: unknown.href })).rejects.toMatchObject({ status: 400 });
    // A state no issued one looks like (a NUL, which Postgres refuses: was a 500) is unknown too.
    for (const state of ['\u0000', 'a'.repeat(500), 'a b']) {
      const odd = new URL(callbackUrl);
      odd.searchParams.set('state', state);
      await expect(rpc.call(IdentityRpc.ssoCallback, { provider: 'local', callbackUrl: odd.href })).rejects.toMatchObject({ status: 400 });
    }

    // The genuine callback still works: a wrong state consumed nothing.
    const pair = await rpc.call(IdentityRpc.ssoCallback, { provider: 'local', callbackUrl: callbackUrl.href });
    expect(pair.accessToken.split('.')).toHaveLength(3);
    // And a replay of it is refused, the state being single use.
    await expect(rpc.call(IdentityRpc.ssoCallback, { provider: 'local', callbackUrl: callbackUrl.href })).rejects.toMatchObject({ status: 400 });
  });

  it('signs a new person in twice at once as one account, takes a callback replayed at once only once, and refuses names and addresses registration would', async () => {
    const both = await Promise.all([atProvider('sub-twice'), atProvider('sub-twice')]);
    const pairs = await Promise.all(both.map(({ callbackUrl }) => rpc.call(IdentityRpc.ssoCallback, { provider: 'local', callbackUrl })));
    expect(decodeJwt(pairs[0].accessToken).sub).toBe(decodeJwt(pairs[1].accessToken).sub);
    expect(await env.sql(`SELECT 1 FROM identity.users WHERE email = 'zwei.mal@example.eu'`)).toHaveLength(1);

    const { callbackUrl } = await atProvider('sub-anna');
    const answers = await Promise.allSettled([1, 2, 3].map(() => rpc.call(IdentityRpc.ssoCallback, { provider: 'local', callbackUrl })));
    expect(answers.filter((a) => a.status === 'fulfilled')).toHaveLength(1);
    expect(answers.filter((a) => a.status === 'rejected').map((a) => (a as PromiseRejectedResult).reason.status)).toEqual([400, 400]);

    await expect(rpc.call(IdentityRpc.ssoCallback, { provider: 'local', callbackUrl: (await atProvider('sub-markup')).callbackUrl })).rejects.toMatchObject({ status: 422 });
    await expect(rpc.call(IdentityRpc.ssoCallback, { provider: 'local', callbackUrl: (await atProvider('sub-noaddress')).callbackUrl })).rejects.toMatchObject({ status: 401 });
    expect(await env.sql(`SELECT 1 FROM identity.users WHERE email IN ('markup@example.eu', '  not an email  ', 'not an email')`)).toEqual([]);
  });

  it('signs many in at once without the pool running dry (each sign-in asks only on the connection its transaction holds)', async () => {
    // More callbacks than the pool has connections: a transaction that waited for a
    // second connection would wait on its peers, and they on it, until timeouts.
    const urls: string[] = [];
    for (let i = 0; i < 24; i++) urls.push((await atProvider('sub-anna')).callbackUrl);
    const started = Date.now();
    const pairs = await Promise.all(
      urls.map((callbackUrl, i) => rpc.call(IdentityRpc.ssoCallback, { provider: 'local', callbackUrl }, { meta: { ip: `198.51.100.${i}` } })),
    );
    // Waiting on peers ends only at the RPC timeout (10 s); a loaded machine takes a few seconds for 24 sign-ins.
    expect(Date.now() - started).toBeLessThan(8_000);
    expect(new Set(pairs.map((p) => p.refreshToken)).size).toBe(urls.length);
  });

  it('takes over an unverified account with the address for its owner: the registrant\'s password, sessions and API keys end, and its settings are the defaults again', async () => {
    // Someone registered the address first (never verified) and kept a password, a session and an API key.
    const password = 'Vorher registriert 2026';
    const squatter = await rpc.call(IdentityRpc.register, { email: 'lena.vogel@example.eu', password, firstName: 'Lena', lastName: 'Vogel' });
    const actor = { userId: squatter.user.id, platformRoles: [] };
    const key = await rpc.call(IdentityRpc.createApiKey, { name: 'backdoor', workspace: 'private' }, { actor });
    await rpc.call(IdentityRpc.updateSettings, { restrictToEu: false }, { actor });

    const { pair } = await signIn('sub-lena');
    expect(decodeJwt(pair.accessToken).sub).toBe(squatter.user.id);
    await expect(rpc.call(IdentityRpc.login, { email: 'lena.vogel@example.eu', password })).rejects.toMatchObject({ status: 401 });
    await expect(rpc.call(IdentityRpc.refresh, { refreshToken: squatter.refreshToken })).rejects.toMatchObject({ status: 401 });
    await expect(rpc.call(IdentityRpc.verifyApiKey, { key: key.key })).rejects.toMatchObject({ status: 401 });
    const [user] = await env.sql(`SELECT email_verified_at, password_hash, restrict_to_eu FROM identity.users WHERE id = $1`, [squatter.user.id]);
    expect(user.email_verified_at).not.toBeNull();
    expect(user.password_hash).toBeNull();
    // The registrant's choice to let prompts leave the EU was never the owner's: the default is back, and chat hears of it.
    expect(user.restrict_to_eu).toBe(true);
    await lastEvent(env, 'identity.user.settings-changed', (e: { data: { userId: string; restrictToEu: boolean } }) => e.data.userId === squatter.user.id && e.data.restrictToEu);
    // The owner's own sign-in goes on working.
    await expect(rpc.call(IdentityRpc.refresh, { refreshToken: pair.refreshToken })).resolves.toMatchObject({ tokenType: 'Bearer' });
  });

  it('warns of no new device on the sign-in that created the account, only on a later one from another address', async () => {
    const signedInFrom = async (ip: string) => {
      const { callbackUrl } = await atProvider('sub-mira');
      const before = new Date().toISOString();
      const pair = await rpc.call(IdentityRpc.ssoCallback, { provider: 'local', callbackUrl }, { meta: { ip } });
      const userId = decodeJwt(pair.accessToken).sub;
      return (await lastEvent<{ userId: string; ip?: string; newDevice: boolean }>(env, 'identity.user.signed-in', (e) => e.data.userId === userId && e.occurredAt >= before)).data;
    };
    expect(await signedInFrom('192.0.2.61')).toMatchObject({ newDevice: false });
    expect(await signedInFrom('198.51.100.61')).toMatchObject({ newDevice: true });
  });

  it('answers 404 for an unknown provider', async () => {
    await expect(rpc.call(IdentityRpc.ssoStart, { provider: 'nope' })).rejects.toMatchObject({ status: 404 });
    await expect(
      rpc.call(IdentityRpc.ssoCallback, { provider: 'nope', callbackUrl: `${REDIRECT_URI}?code=x&state=y` }),
    ).rejects.toMatchObject({ status: 404 });
  });
});
