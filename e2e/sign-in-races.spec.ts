import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { decodeJwt } from 'jose';
import { gatewayService } from '@ally/gateway';
import { identityService } from '@ally/identity';
import { createTestEnv, httpClient, lastEvent, type RunningService, type TestEnv } from '@ally/testing';

const OLD = 'Herbstlaub auf dem Steg';
const NEW = 'Frühlingsregen im Hafen 7';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A sign-in checks the password (argon2, slow) before it opens its session: a
 * password reset or a role revocation that commits meanwhile ends "every
 * session", and the one opened just after must not outlive it either.
 */
describe('sign-ins overlapping a password reset or a role revocation', () => {
  let env: TestEnv;
  let identity: RunningService;
  let http: ReturnType<typeof httpClient>;

  beforeAll(async () => {
    env = await createTestEnv();
    identity = await env.start(identityService);
    http = httpClient((await env.start(gatewayService, { SESSION_CHECK_SECONDS: '0', AUTH_RATE_LIMIT_PER_MINUTE: '5000' })).url);
  });

  afterAll(async () => {
    await env?.close();
  });

  it('leave no session with the old password alive once the reset has answered', async () => {
    const survivors: string[] = [];
    for (let round = 0; round < 2; round++) {
      const email = `race-${round}@example.eu`;
      const reg = await http.post('/v1/auth/register', { email, password: OLD, firstName: 'Stina', lastName: 'Steg' });
      expect(reg.status).toBe(201);
      await http.post('/v1/auth/password/forgot', { email });
      const token = (await lastEvent<{ userId: string; resetToken: string }>(env, 'identity.password.reset-requested', (e) => e.data.userId === reg.body.user.id)).data.resetToken;
      // Logins with the old password spread over the reset's duration.
      const logins = Array.from({ length: 12 }, (_, i) => sleep(i * 8).then(() => http.post('/v1/auth/login', { email, password: OLD })));
      await sleep(20);
      const reset = await http.post('/v1/auth/password/reset', { token, password: NEW });
      expect(reset.status).toBe(204);
      const results = await Promise.all(logins);
      // The reset has answered 204 ("ends all sessions"); every old-password session should be dead now.
      expect((await http.post('/v1/auth/login', { email, password: OLD })).status).toBe(401);
      // Control: the registration's session (opened before the reset) did end.
      expect((await http.get('/v1/me', reg.body.accessToken)).status).toBe(401);
      expect((await http.post('/v1/auth/refresh', { refreshToken: reg.body.refreshToken })).status).toBe(401);
      for (const r of results.filter((r) => r.status === 200)) {
        const me = await http.get('/v1/me', r.body.accessToken);
        const refreshed = await http.post('/v1/auth/refresh', { refreshToken: r.body.refreshToken });
        if (me.status === 200 || refreshed.status === 200) survivors.push(`${email}: me ${me.status}, refresh ${refreshed.status}`);
      }
      // Each sign-in either lost to the reset (401) or was ended by it.
      expect(await env.sql(`SELECT 1 FROM identity.sessions WHERE user_id = $1 AND revoked_at IS NULL`, [reg.body.user.id])).toEqual([]);
    }
    expect(survivors).toEqual([]);
  });

  it('leave no accepted token carrying the revoked role', async () => {
    const stale: string[] = [];
    for (let round = 0; round < 2; round++) {
      const email = `role-race-${round}@example.eu`;
      const reg = await http.post('/v1/auth/register', { email, password: OLD, firstName: 'Stina', lastName: 'Steg' });
      expect(reg.status).toBe(201);
      await identityService.commands!['grant-role'](identity.app, [email, 'compliance']);
      const logins = Array.from({ length: 12 }, (_, i) => sleep(i * 8).then(() => http.post('/v1/auth/login', { email, password: OLD })));
      await sleep(30);
      await identityService.commands!['revoke-role'](identity.app, [email, 'compliance']);
      const results = await Promise.all(logins);
      for (const r of results.filter((r) => r.status === 200)) {
        if (!(decodeJwt(r.body.accessToken).roles as string[]).includes('compliance')) continue;
        const me = await http.get('/v1/me', r.body.accessToken);
        if (me.status === 200) stale.push(`${email}: token with compliance still accepted after revoke-role`);
      }
    }
    expect(stale).toEqual([]);
  });
});
