import { describe, expect, it } from '@jest/globals';
import type { RpcClient } from '@ally/messaging';
import type { ChatConfig } from '../src/config.js';
import { QuotaGate } from '../src/quota/quota.gate.js';

/** The quota cache: answers reused within the TTL, and a map that does not grow with every workspace × user ever seen. */
describe('QuotaGate cache', () => {
  const gate = (ttlMs: number, allowed = true) => {
    const calls: string[] = [];
    const rpc = { call: async (_rpc: unknown, input: { workspace: string; userId: string }) => (calls.push(`${input.workspace}:${input.userId}`), { allowed }) } as unknown as RpcClient;
    const g = new QuotaGate(rpc, { QUOTA_PROVIDER: 'billing', QUOTA_CACHE_MS: ttlMs } as ChatConfig);
    return { g, calls, size: () => (g as unknown as { cache: Map<string, unknown> }).cache.size };
  };

  it('asks billing once per workspace and user within the TTL', async () => {
    const { g, calls } = gate(60_000);
    await g.assertAllowed('private', 'u1');
    await g.assertAllowed('private', 'u1');
    await g.assertAllowed('org', 'u1');
    expect(calls).toEqual(['private:u1', 'org:u1']);
  });

  it('drops expired answers as new ones come in', async () => {
    const { g, calls, size } = gate(20);
    for (let i = 0; i < 50; i++) await g.assertAllowed('private', `user-${i}`);
    expect(size()).toBeGreaterThan(1);
    await new Promise((r) => setTimeout(r, 40));
    await g.assertAllowed('private', 'late');
    expect(size()).toBe(1);
    await g.assertAllowed('private', 'user-0'); // expired: asked again
    expect(calls.filter((c) => c === 'private:user-0')).toHaveLength(2);
  });

  it('keeps at most MAX_CACHED answers, dropping the oldest', async () => {
    const { g, calls, size } = gate(60_000);
    for (let i = 0; i < QuotaGate.MAX_CACHED + 5; i++) await g.assertAllowed('w', `u${i}`);
    expect(size()).toBe(QuotaGate.MAX_CACHED);
    await g.assertAllowed('w', `u${QuotaGate.MAX_CACHED + 4}`); // newest: still cached
    await g.assertAllowed('w', 'u0'); // oldest: dropped, asked again
    expect(calls).toHaveLength(QuotaGate.MAX_CACHED + 6);
  });

  it('still refuses with 402 from a cached refusal', async () => {
    const { g, calls } = gate(60_000, false);
    await expect(g.assertAllowed('w', 'u')).rejects.toMatchObject({ status: 402 });
    await expect(g.assertAllowed('w', 'u')).rejects.toMatchObject({ status: 402 });
    expect(calls).toHaveLength(1);
  });
});
