import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Subscription } from '@nats-io/transport-node';
import { BillingRpc, withPrefix } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { createTestEnv, type TestEnv } from '@ally/testing';
import type { ChatConfig } from '../src/config.js';
import { QuotaGate } from '../src/quota/quota.gate.js';

/**
 * The quota cache: answers reused within the TTL, and a map that does not grow
 * with every workspace × user ever seen. Billing's quota RPC is answered on
 * the real NATS by a responder that records what it was asked.
 */
describe('QuotaGate cache', () => {
  let env: TestEnv;
  let rpc: RpcClient;
  let billing: Subscription;
  let calls: string[] = [];
  let allowed = true;
  let remaining: number | undefined;

  beforeAll(async () => {
    env = await createTestEnv();
    const nc = await env.nats();
    // Answers as Nest's NATS transport does: the request's id, the response, disposed.
    billing = nc.subscribe(withPrefix(env.prefix, BillingRpc.quotaCheck.subject), {
      callback: (_err, msg) => {
        const request = msg.json<{ id: string; data: { input: { workspace: string; userId: string } } }>();
        calls.push(`${request.data.input.workspace}:${request.data.input.userId}`);
        msg.respond(JSON.stringify({ id: request.id, response: { allowed, ...(remaining !== undefined ? { remaining } : {}) }, isDisposed: true }));
      },
    });
    rpc = new RpcClient(nc, env.prefix);
    await rpc.connect();
  });

  afterAll(async () => {
    billing?.unsubscribe();
    await rpc?.close();
    await env?.close();
  });

  const gate = (ttlMs: number, answer = true, left?: number) => {
    calls = [];
    allowed = answer;
    remaining = left;
    const g = new QuotaGate(rpc, { QUOTA_PROVIDER: 'billing', QUOTA_CACHE_MS: ttlMs } as ChatConfig);
    return { g, calls: () => calls, size: () => (g as unknown as { cache: Map<string, unknown> }).cache.size };
  };

  it('asks billing once per workspace and user within the TTL', async () => {
    const { g, calls } = gate(60_000);
    await g.assertAllowed('private', 'u1');
    await g.assertAllowed('private', 'u1');
    await g.assertAllowed('org', 'u1');
    expect(calls()).toEqual(['private:u1', 'org:u1']);
  });

  it('drops expired answers as new ones come in', async () => {
    const { g, calls, size } = gate(500);
    for (let i = 0; i < 5; i++) await g.assertAllowed('private', `user-${i}`);
    expect(size()).toBe(5);
    await new Promise((r) => setTimeout(r, 600));
    await g.assertAllowed('private', 'late');
    expect(size()).toBe(1);
    await g.assertAllowed('private', 'user-0'); // expired: asked again
    expect(calls().filter((c) => c === 'private:user-0')).toHaveLength(2);
  });

  it('keeps at most MAX_CACHED answers, dropping the oldest', async () => {
    const { g, calls, size } = gate(60_000);
    // In small batches: all at once would queue ten thousand calls behind billing's 2 s timeout on a busy machine
    // (batches of 100 ran out of it once in CI, with every other suite running beside it).
    for (let from = 0; from < QuotaGate.MAX_CACHED + 5; from += 25) {
      await Promise.all(Array.from({ length: Math.min(25, QuotaGate.MAX_CACHED + 5 - from) }, (_, i) => g.assertAllowed('w', `u${from + i}`)));
    }
    expect(size()).toBe(QuotaGate.MAX_CACHED);
    await g.assertAllowed('w', `u${QuotaGate.MAX_CACHED + 4}`); // newest: still cached
    await g.assertAllowed('w', 'u0'); // oldest: dropped, asked again
    expect(calls()).toHaveLength(QuotaGate.MAX_CACHED + 6);
  });

  it('still refuses with 402 from a cached refusal', async () => {
    const { g, calls } = gate(60_000, false);
    await expect(g.assertAllowed('w', 'u')).rejects.toMatchObject({ status: 402 });
    await expect(g.assertAllowed('w', 'u')).rejects.toMatchObject({ status: 402 });
    expect(calls()).toHaveLength(1);
  });

  it('refuses a prompt that alone needs more tokens than are left, and takes recorded answers off what is left until billing answers again', async () => {
    const { g, calls } = gate(60_000, true, 1_000);
    const words = (n: number) => [{ role: 'user' as const, content: Array.from({ length: n }, () => 'word').join(' ') }];
    const first = await g.assertAllowed('w', 'u', words(500)); // ~500 tokens: fits, and is reserved
    expect(first.tokens).toBeGreaterThanOrEqual(500);
    await expect(g.assertAllowed('w', 'u', words(2_000))).rejects.toMatchObject({ status: 402, message: expect.stringContaining(`${1_000 - first.tokens} left`) });
    // Its answer recorded (600 tokens in all, in place of the reservation), and another of 600: nothing is left, whatever the cached answer said.
    g.spent(first, 600);
    await expect(g.assertAllowed('w', 'u', words(500))).rejects.toMatchObject({ status: 402, message: expect.stringContaining('400 left') });
    g.spent({ key: 'w:u', tokens: 0, settled: false }, 600);
    await expect(g.assertAllowed('w', 'u', words(1))).rejects.toMatchObject({ status: 402, message: expect.stringContaining('used up') });
    // Near the end, a prompt spelling a special token is counted as text (the tokenizer threw on it: a 500).
    await expect(g.assertAllowed('w', 'other-near-end', [{ role: 'user', content: '<|endoftext|> '.repeat(100) }])).resolves.toMatchObject({ tokens: expect.any(Number) });
    // Another member's cached answer is their own.
    await g.assertAllowed('w', 'other', words(10));
    expect(calls()).toEqual(['w:u', 'w:other-near-end', 'w:other']);
  });

  it('lets through prompts sent together only as far as they fit what is left together (one question to billing for all)', async () => {
    const { g, calls } = gate(60_000, true, 1_000);
    const prompt = [{ role: 'user' as const, content: Array.from({ length: 400 }, () => 'word').join(' ') }]; // ~400 tokens each
    const outcomes = await Promise.allSettled([1, 2, 3, 4].map(() => g.assertAllowed('w', 'burst', prompt)));
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(2);
    expect(outcomes.filter((o) => o.status === 'rejected').map((o) => (o as PromiseRejectedResult).reason.status)).toEqual([402, 402]);
    expect(calls()).toEqual(['w:burst']);
  });

  it('frees what a prompt reserved when no answer came, and credits a reservation only to the answer it was taken from', async () => {
    const prompt = [{ role: 'user' as const, content: Array.from({ length: 400 }, () => 'word').join(' ') }];
    const { g } = gate(60_000, true, 1_000);
    const failed = await g.assertAllowed('w', 'r', prompt);
    const kept = await g.assertAllowed('w', 'r', prompt);
    await expect(g.assertAllowed('w', 'r', prompt)).rejects.toMatchObject({ status: 402 });
    g.release(failed);
    g.release(failed); // once only
    const again = await g.assertAllowed('w', 'r', prompt);
    expect(again.tokens).toBe(failed.tokens);

    // The answer it was taken from expired: billing's new one never had the reservation, and takes the whole usage.
    const short = gate(300, true, 1_000).g;
    const old = await short.assertAllowed('w', 's', prompt);
    await new Promise((r) => setTimeout(r, 400));
    const fresh = await short.assertAllowed('w', 's', [{ role: 'user', content: 'hi' }]);
    short.spent(old, 100);
    const words = [{ role: 'user' as const, content: Array.from({ length: 2_000 }, () => 'word').join(' ') }];
    await expect(short.assertAllowed('w', 's', words)).rejects.toMatchObject({ status: 402, message: expect.stringContaining(`${1_000 - fresh.tokens - 100} left`) });
    expect(kept.settled).toBe(false);
  });
});
