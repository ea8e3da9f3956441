import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { decodeJwt } from 'jose';
import { IdentityRpc, privacyRpcs, ProblemError } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { createTestEnv, lastEvent, type TestEnv } from '@ally/testing';
import { identityService } from '../src/index.js';
import { CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, signInAtProvider, startProvider } from './oidc-provider.js';

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
    // Chat's routing replica hears of the new account's EU-only default.
    expect((await lastEvent(env, 'identity.user.residency-set', (e: { data: { userId: string } }) => e.data.userId === user.id)).data).toEqual({ userId: user.id, restrictToEu: true });
    expect(await env.sql(`SELECT provider, subject, user_id FROM identity.sso_identities`)).toEqual([
      { provider: 'local', subject: 'sub-anna', user_id: user.id },
    ]);
    // The state is single use and gone once consumed.
    expect(await env.sql(`SELECT state FROM identity.sso_states WHERE state = $1`, [auth.searchParams.get('state')])).toEqual([]);
    // Their export names the link as the category declares it: the provider and their id there.
    const exported = await rpc.call(privacyRpcs('identity').export, { userId: user.id, scope: 'all' });
    expect(exported.categories['sso-links']).toEqual([{ provider: 'local', subject: 'sub-anna', created_at: expect.any(String) }]);
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

  it('refuses a callback whose state its browser did not bring back, before spending the attempt: its own browser still finishes it', async () => {
    const { callbackUrl } = await atProvider('sub-jonas');
    const state = new URL(callbackUrl).searchParams.get('state')!;
    for (const browserState of ['', `${state}x`, state.slice(1)]) {
      await expect(rpc.call(IdentityRpc.ssoCallback, { provider: 'local', callbackUrl, browserState })).rejects.toMatchObject({
        status: 400,
        message: expect.stringMatching(/must finish in the browser that started it/),
      });
    }
    await expect(rpc.call(IdentityRpc.ssoCallback, { provider: 'local', callbackUrl, browserState: state })).resolves.toMatchObject({ tokenType: 'Bearer' });
    // An unknown provider is still that, whatever the browser brought.
    await expect(rpc.call(IdentityRpc.ssoCallback, { provider: 'nope', callbackUrl, browserState: '' })).rejects.toMatchObject({ status: 404 });
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
    const residency = await lastEvent(env, 'identity.user.residency-set', (e: { data: { userId: string } }) => e.data.userId === squatter.user.id);
    expect(residency.data).toEqual({ userId: squatter.user.id, restrictToEu: true });
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

  // Last: the provider goes away.
  it('answers 503 (try again), not 401, for a callback the provider cannot be reached for, and tells nothing of our network', async () => {
    const { callbackUrl } = await atProvider('sub-jonas');
    await op.close();
    const refused = rpc.call(IdentityRpc.ssoCallback, { provider: 'local', callbackUrl });
    await expect(refused).rejects.toMatchObject({ status: 503, message: 'The identity provider local cannot be reached; sign in again shortly' });
  });
});
