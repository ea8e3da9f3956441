import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { gatewayService } from '@ally/gateway';
import { identityService } from '@ally/identity';
import { createTestEnv, httpClient, type RunningService, type TestEnv } from '@ally/testing';
import { expectProblem } from './problem-assertions.js';

const PASSWORD = 'Herbstlaub auf dem Steg';

/**
 * An access token stops working when its session ends (logout, a reused
 * refresh token), not only when it expires 15 minutes later. Here the
 * gateway asks identity on every request (SESSION_CHECK_SECONDS=0).
 */
describe('an ended session ends its access tokens', () => {
  let env: TestEnv;
  let identity: RunningService;
  let http: ReturnType<typeof httpClient>;
  let counter = 0;

  beforeAll(async () => {
    env = await createTestEnv();
    identity = await env.start(identityService);
    http = httpClient((await env.start(gatewayService, { SESSION_CHECK_SECONDS: '0' })).url);
  });

  afterAll(async () => {
    await env?.close();
  });

  const register = async () => {
    const email = `session-${++counter}@example.eu`;
    const r = await http.post('/v1/auth/register', { email, password: PASSWORD, firstName: 'Stina', lastName: 'Steg' });
    expect(r.status).toBe(201);
    return { email, ...(r.body as { accessToken: string; refreshToken: string }) };
  };

  it('a logout ends the access token of its session, and only that session', async () => {
    const { email, accessToken, refreshToken } = await register();
    const other = (await http.post('/v1/auth/login', { email, password: PASSWORD })).body as { accessToken: string };
    expect((await http.get('/v1/me', accessToken)).status).toBe(200);
    expect((await http.post('/v1/auth/logout', { refreshToken })).status).toBe(204);
    const refused = await http.get('/v1/me', accessToken);
    expectProblem(refused, 401);
    expect(refused.body.detail).toMatch(/session has ended/);
    expect((await http.get('/v1/me', other.accessToken)).status).toBe(200);
  });

  it('a reused refresh token ends the access tokens of its whole family', async () => {
    const { refreshToken } = await register();
    const rotated = (await http.post('/v1/auth/refresh', { refreshToken })).body as { accessToken: string };
    expect((await http.get('/v1/me', rotated.accessToken)).status).toBe(200);
    expect((await http.post('/v1/auth/refresh', { refreshToken })).status).toBe(401); // the old one again: theft suspected
    expectProblem(await http.get('/v1/me', rotated.accessToken), 401);
  });

  it('while identity cannot be reached, a token is trusted on its signature (the routes that need identity say so themselves), unless its session was seen ending', async () => {
    const { email, accessToken } = await register();
    const ended = (await http.post('/v1/auth/login', { email, password: PASSWORD })).body as { accessToken: string; refreshToken: string };
    expect((await http.post('/v1/auth/logout', { refreshToken: ended.refreshToken })).status).toBe(204);
    expectProblem(await http.get('/v1/me', ended.accessToken), 401);
    await env.stop(identity);
    try {
      // GET /v1/me itself needs identity: a 503 naming it, not a 401 from the session check (nor a 500).
      const res = await http.get('/v1/me', accessToken);
      expectProblem(res, 503);
      expect(res.body.detail).toMatch(/identity service is not available/);
      expect(res.headers.get('retry-after')).toBe('5');
      // An end is final: the logged-out session's token does not come back to life while identity is away.
      const stillEnded = await http.get('/v1/me', ended.accessToken);
      expectProblem(stillEnded, 401);
      expect(stillEnded.body.detail).toMatch(/session has ended/);
    } finally {
      identity = await env.start(identityService);
    }
  });
});

/**
 * Gateways that ask identity only every 15 minutes (SESSION_CHECK_SECONDS=900)
 * still refuse a session's tokens the moment it ends: identity tells every
 * gateway, whatever ended the session.
 */
describe('an ended session is refused at once by every gateway', () => {
  let env: TestEnv;
  let gateways: ReturnType<typeof httpClient>[];

  beforeAll(async () => {
    env = await createTestEnv();
    await env.start(identityService);
    gateways = [];
    for (let i = 0; i < 2; i++) gateways.push(httpClient((await env.start(gatewayService, { SESSION_CHECK_SECONDS: '900' })).url));
  });

  afterAll(async () => {
    await env?.close();
  });

  /** Refused by every gateway within a moment (the message is on its way as the answer comes back). */
  const expectRefusedEverywhere = async (accessToken: string) => {
    for (const gw of gateways) {
      // Until the end reaches it, a gateway asks identity, which may answer for an account deleted meanwhile itself.
      const heard = (r: { status: number; body: { detail?: string } }) => r.status === 401 && /session has ended/.test(r.body?.detail ?? '');
      let res = await gw.get('/v1/me', accessToken);
      for (let i = 0; i < 20 && !heard(res); i++) {
        await new Promise((r) => setTimeout(r, 50));
        res = await gw.get('/v1/me', accessToken);
      }
      expectProblem(res, 401);
      expect(res.body.detail).toMatch(/session has ended/);
    }
  };

  const signIn = async (email: string) => {
    const r = await gateways[0].post('/v1/auth/register', { email, password: PASSWORD, firstName: 'Jonas', lastName: 'Jetty' });
    expect(r.status).toBe(201);
    const tokens = r.body as { accessToken: string; refreshToken: string };
    // Both gateways have asked identity and hold "live" for 15 minutes.
    for (const gw of gateways) expect((await gw.get('/v1/me', tokens.accessToken)).status).toBe(200);
    return tokens;
  };

  it('a logout', async () => {
    const { accessToken, refreshToken } = await signIn('jonas.logout@example.eu');
    const other = (await gateways[1].post('/v1/auth/login', { email: 'jonas.logout@example.eu', password: PASSWORD })).body as { accessToken: string };
    expect((await gateways[1].post('/v1/auth/logout', { refreshToken })).status).toBe(204);
    await expectRefusedEverywhere(accessToken);
    for (const gw of gateways) expect((await gw.get('/v1/me', other.accessToken)).status).toBe(200);
  });

  it('a revocation written by another process (an operator command), and an account deleted', async () => {
    const revoked = await signIn('jonas.revoked@example.eu');
    await env.sql(`UPDATE identity.sessions SET revoked_at = now(), revoked_reason = 'operator' WHERE user_id = (SELECT id FROM identity.users WHERE email = $1)`, ['jonas.revoked@example.eu']);
    await expectRefusedEverywhere(revoked.accessToken);

    const deleted = await signIn('jonas.deleted@example.eu');
    await env.sql(`DELETE FROM identity.users WHERE email = $1`, ['jonas.deleted@example.eu']);
    await expectRefusedEverywhere(deleted.accessToken);
  });
});
