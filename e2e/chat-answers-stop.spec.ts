import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { ChatRpc, IdentityRpc, privacyRpcs, withPrefix, type StreamFrame } from '@ally/contracts';
import { chatService } from '@ally/chat';
import { startOpenAIEmulator, type OpenAIEmulator } from '@ally/emulators';
import { identityService } from '@ally/identity';
import { privacyService } from '@ally/privacy';
import { RpcClient, StreamSubscriber } from '@ally/messaging';
import { createTestEnv, type TestEnv } from '@ally/testing';
import { PRIVACY_TEST_ENV } from './platform-world.js';
import { chatEnv } from './service-env.js';

const ERASED_USER = '00000000-0000-0000-0000-000000000000';
/** Long enough at 5 ms a token that every answer here is stopped well before its end. */
const TOKENS = 400;

/**
 * Deleting a conversation, or erasing its owner, stops the answer being
 * written for it: the provider call is aborted, the stream ends 410 Gone and
 * only what was generated is billed. Two chat replicas share the RPCs, so the
 * deletion often lands on the replica that is not writing the answer.
 */
describe('answers stop when their conversation or owner goes', () => {
  let env: TestEnv;
  let llm: OpenAIEmulator;
  let rpc: RpcClient;
  let streams = 0;

  beforeAll(async () => {
    env = await createTestEnv();
    llm = await startOpenAIEmulator({ latencyPerTokenMs: 5 });
    await env.start(identityService);
    // privacy answers whether a legal hold keeps a conversation before it is deleted.
    await env.start(privacyService, { ...PRIVACY_TEST_ENV, PRIVACY_KEK: randomBytes(32).toString('base64') });
    // One environment for both replicas: they share the key-encryption key, as in the cluster.
    const replica = chatEnv(llm, { QUOTA_PROVIDER: 'none' });
    await env.start(chatService, replica);
    await env.start(chatService, replica);
    rpc = new RpcClient(await env.nats(), env.prefix);
    await rpc.connect();
  });

  afterAll(async () => {
    await rpc?.close();
    await env?.close();
    await llm?.close();
  });

  beforeEach(() => llm.clearRequests());

  const register = async (name: string) => {
    const { user } = await rpc.call(IdentityRpc.register, { email: `${name}-${Date.now()}@example.eu`, password: 'Wellen am Nordseestrand', firstName: name, lastName: 'Stop' });
    return { userId: user.id, platformRoles: [] as [] };
  };

  const subscribe = async () => {
    const subject = `ally.stream.test.stop-${++streams}`;
    const sub = new StreamSubscriber<StreamFrame>(await env.nats(), withPrefix(env.prefix, subject), 5_000, (f) => f.type === 'done' || f.type === 'error');
    return { subject, sub, frames: sub.frames() };
  };

  /** Reads frames (acknowledging them) up to the first text: from then on the part generated is more than nothing. */
  const firstDelta = async (sub: StreamSubscriber<StreamFrame>, frames: AsyncGenerator<StreamFrame>) => {
    for (let next = await frames.next(); !next.done; next = await frames.next()) {
      sub.ack(next.value.seq);
      if (next.value.type === 'delta') return;
    }
    throw new Error('the stream ended before any text');
  };

  /** Reads frames (acknowledging them, as the gateway does) until the final one. */
  const lastFrame = async (sub: StreamSubscriber<StreamFrame>, frames: AsyncGenerator<StreamFrame>) => {
    let last: StreamFrame | undefined;
    for await (const frame of frames) {
      sub.ack(frame.seq);
      last = frame;
    }
    return last;
  };

  const usageOf = (messageIdOrUser: { userId: string }) =>
    env.sql<{ tokens: number }>(`SELECT (payload->'data'->>'completionTokens')::int AS tokens FROM chat.outbox WHERE type = 'chat.completion.recorded' AND payload->'data'->>'userId' = $1 ORDER BY created_at, id`, [
      messageIdOrUser.userId,
    ]);

  it('deleting a conversation mid-answer aborts the provider call on whichever replica writes it, ends the stream 410 and bills the part generated, once', async () => {
    const actor = await register('dora');
    // Six rounds: a replica that never heard of the other's deletion would leave some answer running to its end.
    for (let round = 0; round < 6; round++) {
      llm.clearRequests();
      const conversation = await rpc.call(ChatRpc.createConversation, { workspace: 'private' }, { actor });
      const { subject, sub, frames } = await subscribe();
      await rpc.call(ChatRpc.streamMessage, { conversationId: conversation.id, content: `#tokens=${TOKENS} round ${round}`, stream: { subject, window: 64 } }, { actor });
      await firstDelta(sub, frames);
      await rpc.call(ChatRpc.deleteConversation, { id: conversation.id }, { actor });
      expect(await lastFrame(sub, frames)).toMatchObject({ type: 'error', problem: { status: 410, title: 'Gone', detail: expect.stringContaining('deleted') } });
      const call = await llm.waitForRequest({ aborted: true }, 5_000);
      expect(call.completed).toBe(false);
      expect(call.completionTokens).toBeLessThan(TOKENS);
    }
    // One usage event per answer, for what the user was sent before the stop: no full answer billed, none twice.
    const usage = await usageOf(actor);
    expect(usage).toHaveLength(6);
    for (const { tokens } of usage) {
      expect(tokens).toBeGreaterThan(0);
      expect(tokens).toBeLessThan(TOKENS);
    }
  });

  it('a conversation deleted while a non-streamed answer is written: the provider call is aborted and the call answers 410', async () => {
    const actor = await register('emil');
    const conversation = await rpc.call(ChatRpc.createConversation, { workspace: 'private' }, { actor });
    const answer = rpc.call(ChatRpc.postMessage, { conversationId: conversation.id, content: `#tokens=${TOKENS} go` }, { actor, timeoutMs: 10_000 });
    await llm.waitForRequest({ operation: 'chat.completions' }, 5_000);
    await rpc.call(ChatRpc.deleteConversation, { id: conversation.id }, { actor });
    await expect(answer).rejects.toMatchObject({ status: 410 });
    expect((await llm.waitForRequest({ aborted: true }, 5_000)).completed).toBe(false);
  });

  it("erasing a user stops their conversation's answer and their /v1/chat/completions stream; what was generated is billed to nobody", async () => {
    const actor = await register('frieda');
    const conversation = await rpc.call(ChatRpc.createConversation, { workspace: 'private' }, { actor });
    const inConversation = await subscribe();
    await rpc.call(ChatRpc.streamMessage, { conversationId: conversation.id, content: `#tokens=${TOKENS} go`, stream: { subject: inConversation.subject, window: 64 } }, { actor });
    const compat = await subscribe();
    const request = { model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: `#tokens=${TOKENS} go` }], stream: true };
    await rpc.call(ChatRpc.completionsStream, { workspace: 'private', request, stream: { subject: compat.subject, window: 64 } }, { actor });
    await firstDelta(inConversation.sub, inConversation.frames);
    await firstDelta(compat.sub, compat.frames);

    await rpc.call(privacyRpcs('chat').erase, { userId: actor.userId, scope: 'all' });

    for (const { sub, frames } of [inConversation, compat]) {
      expect(await lastFrame(sub, frames)).toMatchObject({ type: 'error', problem: { status: 410, detail: expect.stringContaining('erased') } });
    }
    const calls = llm.requests().filter((r) => r.operation === 'chat.completions');
    expect(calls).toHaveLength(2);
    expect(calls.every((r) => r.aborted && !r.completed && r.completionTokens < TOKENS)).toBe(true);
    // Both answers reach billing's ledger for the generated part, naming nobody; the outbox holds nothing of the person.
    // Exactly these two (only this test erases anyone): each written before its stream's last frame.
    const usage = await usageOf({ userId: ERASED_USER });
    expect(usage).toHaveLength(2);
    for (const { tokens } of usage) {
      expect(tokens).toBeGreaterThan(0);
      expect(tokens).toBeLessThan(TOKENS);
    }
    expect(await env.sql(`SELECT 1 FROM chat.outbox WHERE payload::text LIKE $1`, [`%${actor.userId}%`])).toEqual([]);
  });
});
