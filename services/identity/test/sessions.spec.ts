import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { IdentityRpc, privacyRetentionRpc, type TokenPair } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { AgeRetentionService } from '@ally/platform';
import { createTestEnv, lastEvent, type TestEnv } from '@ally/testing';
import { identityService } from '../src/index.js';
import { UsersRepository } from '../src/users/users.repository.js';
import type { RunningService } from '@ally/platform';

const PASSWORD = 'Kastanienallee im Herbst';
let counter = 0;

describe('identity sessions, password reset and retention', () => {
  let env: TestEnv;
  let rpc: RpcClient;
  let identity: RunningService;

  beforeAll(async () => {
    env = await createTestEnv();
    identity = await env.start(identityService, { SESSION_IDLE_TTL_SECONDS: '2', LOGIN_MAX_FAILURES_PER_ACCOUNT: '3' });
    rpc = new RpcClient(await env.nats(), env.prefix);
    await rpc.connect();
  });

  afterAll(async () => {
    await rpc?.close();
    await env?.close();
  });

  const register = async () => {
    const email = `user${++counter}@example.eu`;
    const reply = await rpc.call(IdentityRpc.register, { email, password: PASSWORD, firstName: 'Lena', lastName: 'Hoffmann' });
    return { email, ...reply };
  };

  it('signs access tokens with EdDSA, a key id from the JWKS, a subject and a session', async () => {
    const { accessToken, user } = await register();
    const header = decodeProtectedHeader(accessToken);
    const claims = decodeJwt(accessToken);
    const jwks = await rpc.call(IdentityRpc.jwks, {});
    expect(header).toMatchObject({ alg: 'EdDSA', typ: 'at+jwt' });
    expect(jwks.keys.map((k) => k.kid)).toContain(header.kid);
    expect(claims).toMatchObject({ sub: user.id, roles: [] });
    expect(typeof claims.sid).toBe('string');
    expect(claims.exp! - claims.iat!).toBe(900);
  });

  it('ends a session that stayed idle longer than the idle lifetime', async () => {
    const { refreshToken } = await register();
    await new Promise((r) => setTimeout(r, 2_500));
    await expect(rpc.call(IdentityRpc.refresh, { refreshToken })).rejects.toMatchObject({ status: 401, message: expect.stringMatching(/expired/) });
  });

  it('ends a session at logout and treats a second logout as done', async () => {
    const { refreshToken } = await register();
    await rpc.call(IdentityRpc.logout, { refreshToken });
    await rpc.call(IdentityRpc.logout, { refreshToken });
    await expect(rpc.call(IdentityRpc.refresh, { refreshToken })).rejects.toMatchObject({ status: 401 });
  });

  it('resets a password with a single-use token and ends every session', async () => {
    const { email, user, refreshToken } = await register();
    const other: TokenPair = await rpc.call(IdentityRpc.login, { email, password: PASSWORD });
    await rpc.call(IdentityRpc.forgotPassword, { email });
    await rpc.call(IdentityRpc.forgotPassword, { email: 'nobody@example.eu' }); // same answer for unknown addresses
    const { resetToken } = (await lastEvent<{ userId: string; resetToken: string }>(env, 'identity.password.reset-requested', (e) => e.data.userId === user.id)).data;

    await expect(rpc.call(IdentityRpc.resetPassword, { token: resetToken, password: 'password1234' })).rejects.toMatchObject({ status: 400 });
    await rpc.call(IdentityRpc.resetPassword, { token: resetToken, password: 'Neue Blätter fallen leise' });
    await expect(rpc.call(IdentityRpc.resetPassword, { token: resetToken, password: 'Noch einmal ganz anders' })).rejects.toMatchObject({ status: 400 });

    for (const token of [refreshToken, other.refreshToken]) {
      await expect(rpc.call(IdentityRpc.refresh, { refreshToken: token })).rejects.toMatchObject({ status: 401 });
    }
    await expect(rpc.call(IdentityRpc.login, { email, password: PASSWORD })).rejects.toMatchObject({ status: 401 });
    await expect(rpc.call(IdentityRpc.login, { email, password: 'Neue Blätter fallen leise' })).resolves.toMatchObject({ tokenType: 'Bearer' });
  });

  it('checks no more passwords than the limit allows when the attempts come all at once', async () => {
    const { email } = await register();
    const answers = await Promise.allSettled(Array.from({ length: 12 }, () => rpc.call(IdentityRpc.login, { email, password: 'wrong password here' }, { meta: { ip: '203.0.113.9' } })));
    const statuses = answers.map((a) => (a.status === 'rejected' ? (a.reason as { status: number }).status : 200));
    // LOGIN_MAX_FAILURES_PER_ACCOUNT is 3 here: three guesses are checked, the rest wait.
    expect(statuses.filter((s) => s === 401)).toHaveLength(3);
    expect(statuses.filter((s) => s === 429)).toHaveLength(9);
  });

  it('throttles an account after repeated failures, even for the right password, and records IP and time', async () => {
    const { email, user } = await register();
    for (let i = 0; i < 3; i++) {
      await expect(rpc.call(IdentityRpc.login, { email, password: 'wrong password here' }, { meta: { ip: '203.0.113.7' } })).rejects.toMatchObject({ status: 401 });
    }
    await expect(rpc.call(IdentityRpc.login, { email, password: PASSWORD }, { meta: { ip: '203.0.113.8' } })).rejects.toMatchObject({ status: 429, extra: { retryAfter: 900 } });
    const audit = await env.sql(`SELECT ip, succeeded, occurred_at FROM identity.login_audit WHERE user_id = $1`, [user.id]);
    expect(audit).toHaveLength(3);
    expect(audit.every((a) => a.ip === '203.0.113.7' && a.succeeded === false && a.occurred_at instanceof Date)).toBe(true);
  });

  it('grants and revokes platform roles only through the CLI command, and the next token carries them', async () => {
    const { email } = await register();
    const running = await env.start(identityService);
    const grant = identityService.commands!['grant-role'];
    await expect(grant(running.app, [email, 'compliance'])).resolves.toContain('[compliance]');
    await expect(grant(running.app, [email, 'superuser'])).rejects.toThrow(/usage/);
    await expect(grant(running.app, [email, 'admin', 'extra'])).rejects.toThrow(/usage: grant-role .*unexpected extra/);
    const { accessToken } = await rpc.call(IdentityRpc.login, { email, password: PASSWORD });
    expect(decodeJwt(accessToken).roles).toEqual(['compliance']); // not admin: the command with a word too many did nothing
    await expect(identityService.commands!['revoke-role'](running.app, [email, 'compliance'])).resolves.toContain('[]');
    await env.stop(running);
  });

  /** What privacy's retention run asks of identity for `categories` at their default periods. */
  const retentionRun = (categories: { category: string; retentionDays: number | null }[], heldUserIds: string[] = []) =>
    rpc.call(privacyRetentionRpc('identity'), { categories, dryRun: false, heldUserIds });

  it('purges the login audit after 30 days in a retention run, nothing younger and nothing of a held user; never hourly', async () => {
    const [{ user }, held] = [await register(), await register()];
    for (const id of [user.id, held.user.id]) {
      await env.sql(
        `INSERT INTO identity.login_audit (user_id, ip, succeeded, method, occurred_at) VALUES
           ($1, '198.51.100.1', true, 'password', now() - interval '31 days'),
           ($1, '198.51.100.2', true, 'password', now() - interval '29 days')`,
        [id],
      );
    }
    const ips = (id: string) => env.sql<{ ip: string }>(`SELECT ip FROM identity.login_audit WHERE user_id = $1 AND ip LIKE '198.51.100.%' ORDER BY ip`, [id]);
    const running = await env.start(identityService);
    // The hourly housekeeping leaves a declared category alone: a legal hold or compliance's period may say otherwise.
    const hourly = await running.app.get(AgeRetentionService).purgeExpired();
    expect(Object.keys(hourly)).not.toContain('login-audit');
    expect(await ips(user.id)).toHaveLength(2);

    const report = await retentionRun([{ category: 'login-audit', retentionDays: 30 }], [held.user.id]);
    expect(report.results).toEqual([{ category: 'login-audit', affected: expect.any(Number) }]);
    expect(await ips(user.id)).toEqual([{ ip: '198.51.100.2' }]);
    expect(await ips(held.user.id)).toHaveLength(2);
    await env.stop(running);
  });

  it('purges API keys 30 days after their revocation in a retention run, and keeps live keys and those revoked since', async () => {
    const { user } = await register();
    const key = (name: string, revoked: string | null) =>
      env.sql(`INSERT INTO identity.api_keys (id, user_id, name, workspace, prefix, key_hash, revoked_at) VALUES (gen_random_uuid(), $1, $2, 'private', 'ally_x', $3, ${revoked ?? 'NULL'})`, [user.id, name, `hash-${name}`]);
    await key('long revoked', `now() - interval '31 days'`);
    await key('lately revoked', `now() - interval '29 days'`);
    await key('live', null);
    // The category has no period of its own (keys live as long as the account): its rule says 30 days after revocation.
    const report = await retentionRun([{ category: 'api-keys', retentionDays: null }]);
    expect(report.results).toEqual([{ category: 'api-keys', affected: 1 }]);
    const left = await env.sql<{ name: string }>(`SELECT name FROM identity.api_keys WHERE user_id = $1 ORDER BY name`, [user.id]);
    expect(left.map((k) => k.name)).toEqual(['lately revoked', 'live']);
  });

  it('answers a sign-in whose account is erased while its password is checked as wrong (401), not 500', async () => {
    const { email } = await register();
    const users = identity.app.get(UsersRepository);
    const findByEmail = users.findByEmail.bind(users);
    // The erasure's delete lands between the lookup and the sign-in's writes.
    users.findByEmail = async (...args: Parameters<typeof findByEmail>) => {
      const user = await findByEmail(...args);
      if (user) await env.sql(`DELETE FROM identity.users WHERE id = $1`, [user.id]);
      return user;
    };
    try {
      await expect(rpc.call(IdentityRpc.login, { email, password: PASSWORD })).rejects.toMatchObject({ status: 401 });
    } finally {
      users.findByEmail = findByEmail;
    }
  });
});
