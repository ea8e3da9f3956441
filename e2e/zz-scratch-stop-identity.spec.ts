import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { gatewayService } from '@ally/gateway';
import { identityService } from '@ally/identity';
import { createTestEnv, httpClient, type TestEnv } from '@ally/testing';
import { spawnService, sleep } from './zz-scratch-stop-helper.js';

describe('identity SIGTERM', () => {
  let env: TestEnv;
  let http: ReturnType<typeof httpClient>;
  beforeAll(async () => {
    env = await createTestEnv();
    await env.migrate(identityService);
    const gw = await env.start(gatewayService, { AUTH_RATE_LIMIT_PER_MINUTE: '10000' });
    http = httpClient(gw.url);
  });
  afterAll(async () => { await env?.close(); });

  const run = async (label: string, overrides: Record<string, string>, n: number, delayMs: number, twice = false) => {
    const proc = spawnService(env, identityService, overrides);
    await proc.ready;
    await sleep(300);
    const t0 = Date.now();
    const reqs = Array.from({ length: n }, (_, i) =>
      http.post('/v1/auth/register', { email: `${label}-${i}-${Date.now()}@example.eu`, password: 'Kraniche über dem Moor', firstName: 'K', lastName: 'K', locale: 'en' })
        .then((r) => ({ s: r.status, ms: Date.now() - t0, b: r.status >= 500 ? r.body : undefined })));
    await sleep(delayMs);
    const tk = Date.now();
    proc.p.kill('SIGTERM');
    if (twice) { await sleep(100); proc.p.kill('SIGTERM'); }
    const res = await Promise.all(reqs);
    const ex = await proc.exited;
    console.log(label, JSON.stringify({ exit: ex, exitAfter: ex.at - tk, res }), '\n', proc.out.filter((l) => /shutting|stopped|error|ERR|warn/i.test(l)).slice(0, 15).join('\n'));
    return { res, ex, exitAfter: ex.at - tk };
  };

  it('slow registrations in flight', async () => {
    const r = await run('a', { ARGON2_TIME_COST: '12' }, 12, 200);
    expect(r.ex.code).toBe(0);
  }, 60_000);
  it('in-flight outlasts grace', async () => {
    const r = await run('b', { ARGON2_TIME_COST: '40', SHUTDOWN_GRACE_MS: '2000' }, 12, 200);
    expect(r.ex.code).toBe(0);
  }, 60_000);
  it('two SIGTERMs', async () => {
    const r = await run('c', { ARGON2_TIME_COST: '12' }, 8, 200, true);
    expect(r.ex.code).toBe(0);
  }, 60_000);
});
