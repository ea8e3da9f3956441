import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { IdentityRpc } from '@ally/contracts';
import { identityService } from '@ally/identity';
import { RpcClient } from '@ally/messaging';
import { createTestEnv, type TestEnv } from '@ally/testing';

const PASSWORD = 'Kraniche über dem Moor';

/**
 * A replica told to stop (a rollout, a scale-down) answers the requests it
 * has taken before it lets go of NATS and its pool: they were dropped, and
 * each caller waited for the RPC timeout (504) with nothing done.
 */
describe('a service that stops', () => {
  let env: TestEnv;
  let rpc: RpcClient;

  beforeAll(async () => {
    env = await createTestEnv();
    rpc = new RpcClient(await env.nats(), env.prefix, 8_000);
    await rpc.connect();
  });

  afterAll(async () => {
    await rpc?.close();
    await env?.close();
  });

  it('answers the requests it took before it goes, and those after get a 503 at once', async () => {
    // Slow hashing: registrations still running when the stop comes.
    const identity = await env.start(identityService, { ARGON2_TIME_COST: '12' });
    const started = Date.now();
    const registrations = Array.from({ length: 6 }, (_, i) =>
      rpc.call(IdentityRpc.register, { email: `kranich-${i}@example.eu`, password: PASSWORD, firstName: 'Kira', lastName: 'Kranich' }).then(
        (reply) => ({ ok: true as const, userId: reply.user.id as string }),
        (err) => ({ ok: false as const, status: err.status as number }),
      ),
    );
    await new Promise((r) => setTimeout(r, 150));
    await env.stop(identity);
    const answers = await Promise.all(registrations);
    expect(Date.now() - started).toBeLessThan(8_000);
    expect(answers.filter((a) => !a.ok && a.status !== 503)).toEqual([]);
    const registered = answers.filter((a) => a.ok).map((a) => a.userId);
    expect(registered.length).toBeGreaterThan(0);
    expect(await env.sql(`SELECT count(*)::int AS n FROM identity.users WHERE id = ANY($1::uuid[])`, [registered])).toEqual([{ n: registered.length }]);
    await expect(rpc.call(IdentityRpc.register, { email: 'spaet@example.eu', password: PASSWORD, firstName: 'Sven', lastName: 'Spät' })).rejects.toMatchObject({ status: 503 });
  });

  it('answers the requests the grace cannot wait for with a 503 at its end, not the caller\'s timeout', async () => {
    // Hashing far longer than the grace: none of these can finish before the service must be gone.
    const identity = await env.start(identityService, { ARGON2_TIME_COST: '60', SHUTDOWN_GRACE_MS: '1500' });
    const started = Date.now();
    const registrations = Array.from({ length: 3 }, (_, i) =>
      rpc.call(IdentityRpc.register, { email: `reiher-${i}@example.eu`, password: PASSWORD, firstName: 'Rolf', lastName: 'Reiher' }).then(
        () => 201,
        (err) => err.status as number,
      ),
    );
    await new Promise((r) => setTimeout(r, 150));
    const stopping = env.stop(identity);
    const answers = await Promise.all(registrations);
    expect(Date.now() - started).toBeLessThan(4_000);
    expect(answers.every((status) => status === 503 || status === 201)).toBe(true);
    expect(answers).toContain(503);
    await stopping;
  });
});
