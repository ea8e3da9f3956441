import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { gatewayService } from '@ally/gateway';
import { identityService } from '@ally/identity';
import { createTestEnv, httpClient, waitFor, type TestEnv } from '@ally/testing';
import { spawnService, sleep } from './zz-scratch-stop-helper.js';

describe('identity SIGTERM 2', () => {
  let env: TestEnv;
  let http: ReturnType<typeof httpClient>;
  beforeAll(async () => {
    env = await createTestEnv();
    await env.migrate(identityService);
    const gw = await env.start(gatewayService, { AUTH_RATE_LIMIT_PER_MINUTE: '10000' });
    http = httpClient(gw.url);
  });
  afterAll(async () => { await env?.close(); });

  it('burst outlasting default grace', async () => {
    const proc = spawnService(env, identityService, { ARGON2_TIME_COST: '12' });
    await proc.ready;
    await sleep(300);
    const t0 = Date.now();
    const reqs = Array.from({ length: 60 }, (_, i) =>
      http.post('/v1/auth/register', { email: `burst-${i}@example.eu`, password: 'Kraniche über dem Moor', firstName: 'K', lastName: 'K', locale: 'en' })
        .then((r) => ({ i, s: r.status, ms: Date.now() - t0, d: r.status >= 500 ? r.body?.detail : undefined })));
    await sleep(300);
    const tk = Date.now();
    proc.p.kill('SIGTERM');
    const res = await Promise.all(reqs);
    const ex = await proc.exited;
    const hist: Record<string, number> = {};
    for (const r of res) hist[`${r.s}${r.ms > 9000 ? '-slow' : ''}`] = (hist[`${r.s}${r.ms > 9000 ? '-slow' : ''}`] ?? 0) + 1;
    const users = await env.sql(`SELECT email FROM identity.users WHERE email LIKE 'burst-%'`);
    const ok = res.filter((r) => r.s === 201).length;
    const outbox = await env.sql(`SELECT count(*)::int n FROM identity.outbox WHERE sent_at IS NULL`);
    console.log(JSON.stringify({ ex, exitAfter: ex.at - tk, hist, users: users.length, ok, outbox, sample: res.filter((r) => r.s !== 201).slice(0, 3) }), proc.out.filter((l) => /shutting|stopped|error|ERR|warn/i.test(l)).slice(0, 10).join('\n'));
    // users with 504
    const got = new Set(users.map((u: any) => u.email));
    console.log('504 but user exists:', res.filter((r) => r.s !== 201 && got.has(`burst-${r.i}@example.eu`)).length);
    const p2 = spawnService(env, identityService, {});
    await p2.ready;
    await waitFor(async () => (await env.sql(`SELECT count(*)::int n FROM identity.outbox WHERE sent_at IS NULL`))[0].n === 0, 'outbox empty');
    p2.p.kill('SIGTERM');
    console.log('p2', await p2.exited);
  }, 90_000);

  it('SIGTERM during start-up', async () => {
    for (const delay of [150, 400, 700, 1000, 1300]) {
      const proc = spawnService(env, identityService, {});
      await sleep(delay);
      proc.p.kill('SIGTERM');
      const ex = await proc.exited;
      console.log('startup', delay, JSON.stringify(ex), proc.out.filter((l) => /started|shutting|stopped|ERR/.test(l)).map((l) => l.slice(0, 200)).join(' | '));
    }
  }, 60_000);
});
