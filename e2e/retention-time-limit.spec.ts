import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { identityService } from '@ally/identity';
import { waitFor } from '@ally/testing';
import { startPlatformWorld, type PlatformWorld } from './platform-world.js';

const PASSWORD = 'Leuchtturm am Deich bei Ebbe';

/** A retention run counts everything a service deleted, also when the service had more to delete than the run could wait for. */
describe('a retention run that reaches its time limit', () => {
  let world: PlatformWorld;

  beforeAll(async () => {
    // privacy waits 1.5 s for each service: a service stops taking batches well before.
    world = await startPlatformWorld({ gateway: true, privacy: { RETENTION_RPC_TIMEOUT_MS: '1500' } });
  }, 60_000);

  afterAll(async () => {
    await world?.close();
  });

  it('keeps the count of what went, says the service stopped with more to go, and leaves nothing deleted uncounted', async () => {
    const { http, env } = world;
    const email = `cora-${randomUUID().slice(0, 8)}@example.eu`;
    const user = (await http.post('/v1/auth/register', { email, password: PASSWORD, firstName: 'Cora', lastName: 'Frist', locale: 'de' })).body.user;
    await identityService.commands!['grant-role'](world.services.identity.app, [email, 'compliance']);
    const token = (await http.post('/v1/auth/login', { email, password: PASSWORD })).body.accessToken as string;
    await env.sql(
      `INSERT INTO identity.login_audit (user_id, ip, succeeded, method, occurred_at) SELECT $1, '192.0.2.7', true, 'password', now() - interval '40 days' FROM generate_series(1, 300000)`,
      [user.id],
    );
    const old = async () => (await env.sql<{ n: number }>(`SELECT count(*)::int AS n FROM identity.login_audit WHERE ip = '192.0.2.7'`))[0].n;

    const started = await http.post('/v1/admin/privacy/retention-runs', { dryRun: false, categories: ['login-audit'] }, token);
    expect(started.status).toBe(202);
    const run = await waitFor(async () => {
      const r = (await http.get(`/v1/admin/privacy/retention-runs/${started.body.id}`, token)).body;
      return r.status === 'completed' || r.status === 'failed' ? r : undefined;
    }, 'the run to end', 30_000);
    const counted = run.results.find((r: { category: string }) => r.category === 'login-audit')?.affected as number;
    expect(counted).toBeGreaterThan(0);
    expect(run.status).toBe('failed');
    expect(run.errors).toEqual([{ service: 'identity', error: expect.stringContaining('stopped at its time limit with more to delete in login-audit') }]);
    // identity took no batch after it answered: what is gone is what the run counted.
    await new Promise((r) => setTimeout(r, 1_000));
    expect(await old()).toBe(300_000 - counted);
  }, 90_000);
});
