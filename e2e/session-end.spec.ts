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
      // An end is final: the logged-out session's token does not come back to life while identity is away.
      const stillEnded = await http.get('/v1/me', ended.accessToken);
      expectProblem(stillEnded, 401);
      expect(stillEnded.body.detail).toMatch(/session has ended/);
    } finally {
      identity = await env.start(identityService);
    }
  });
});
