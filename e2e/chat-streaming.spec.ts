import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import OpenAI from 'openai';
import { connect } from 'node:net';
import { BillingRpc, ChatRpc, IdentityRpc, STREAM_HEARTBEAT_MS, STREAM_SILENCE_LIMIT_MS, withPrefix, type StreamFrame } from '@ally/contracts';
import { chatService } from '@ally/chat';
import { startOpenAIEmulator, type OpenAIEmulator } from '@ally/emulators';
import { gatewayService } from '@ally/gateway';
import { identityService } from '@ally/identity';
import { RpcClient, StreamSubscriber } from '@ally/messaging';
import { createTestEnv, httpClient, waitFor, type TestEnv } from '@ally/testing';
import { startChatWorld, type ChatWorld } from './chat-world.js';
import { chatEnv } from './service-env.js';

describe('chat streams over NATS', () => {
  let env: TestEnv;
  let llm: OpenAIEmulator;
  let rpc: RpcClient;
  let actor: { userId: string; platformRoles: [] };

  beforeAll(async () => {
    env = await createTestEnv();
    llm = await startOpenAIEmulator({ latencyPerTokenMs: 5 });
    await env.start(identityService);
    await env.start(chatService, chatEnv(llm, { QUOTA_PROVIDER: 'none', STREAM_ACK_TIMEOUT_MS: '500' }));
    rpc = new RpcClient(await env.nats(), env.prefix);
    await rpc.connect();
    const { user } = await rpc.call(IdentityRpc.register, { email: 'jan@example.eu', password: 'Wellen am Nordseestrand', firstName: 'Jan', lastName: 'Peters' });
    actor = { userId: user.id, platformRoles: [] };
  });

  afterAll(async () => {
    await rpc?.close();
    await env?.close();
    await llm?.close();
  });

  const subscribe = async (subject: string) =>
    new StreamSubscriber<StreamFrame>(await env.nats(), withPrefix(env.prefix, subject), 5_000, (f) => f.type === 'done' || f.type === 'error');

  /** A new conversation with one message streaming into it to `subject`, as the gateway would ask for it. */
  const streamInto = async (subject: string, tokens: number, window: number) => {
    const conversation = await rpc.call(ChatRpc.createConversation, { workspace: 'private' }, { actor });
    const sub = await subscribe(subject);
    await rpc.call(ChatRpc.streamMessage, { conversationId: conversation.id, content: `#tokens=${tokens} go`, stream: { subject, window } }, { actor });
    return { conversation, sub, frames: sub.frames() };
  };

  it('delivers frames in order with backpressure, and ends with done', async () => {
    const conversation = await rpc.call(ChatRpc.createConversation, { workspace: 'private' }, { actor });
    const sub = await subscribe('ally.stream.test.ordered');
    await rpc.call(ChatRpc.streamMessage, { conversationId: conversation.id, content: '#tokens=100 go', stream: { subject: 'ally.stream.test.ordered', window: 4 } }, { actor });
    const seqs: number[] = [];
    let text = '';
    for await (const frame of sub.frames()) {
      seqs.push(frame.seq);
      if (frame.type === 'delta') text += frame.text;
      sub.ack(frame.seq); // a slow but steady consumer: chat never runs more than 4 frames ahead
    }
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
    expect(text.trim().split(/\s+/)).toHaveLength(100);
  });

  it('a gateway that dies mid-stream leaves no stuck state: the provider call is aborted and what was said is kept as aborted', async () => {
    const { conversation, sub, frames } = await streamInto('ally.stream.test.dead-gateway', 300, 8);
    // Read a little, then vanish without acknowledging or cancelling.
    await frames.next();
    sub.close();
    const aborted = await llm.waitForRequest({ aborted: true }, 10_000);
    expect(aborted.completed).toBe(false);
    const saved = await waitFor(async () => {
      const c = await rpc.call(ChatRpc.getConversation, { id: conversation.id }, { actor });
      return c.messages.length === 2 ? c : undefined;
    }, 'the aborted answer to be saved');
    expect(saved.messages[1]).toMatchObject({ role: 'assistant', status: 'aborted' });
    expect(saved.messages[1].content.length).toBeGreaterThan(0);
  });

  // Deleting a conversation or erasing its owner mid-answer: e2e/chat-answers-stop.spec.ts.
});

describe('a chat replica told to stop while it writes answers', () => {
  let env: TestEnv;
  let llm: OpenAIEmulator;
  let rpc: RpcClient;

  beforeAll(async () => {
    env = await createTestEnv();
    llm = await startOpenAIEmulator({ latencyPerTokenMs: 20 });
    await env.start(identityService);
    rpc = new RpcClient(await env.nats(), env.prefix);
    await rpc.connect();
  });

  afterAll(async () => {
    await rpc?.close();
    await env?.close();
    await llm?.close();
  });

  it('finishes the answers that fit its grace period and ends the others with an error, keeping and billing what was written', async () => {
    // 4 s of grace: 1.5 s to finish answers, the rest to save those it stops.
    const chat = await env.start(chatService, chatEnv(llm, { QUOTA_PROVIDER: 'none', SHUTDOWN_GRACE_MS: '4000' }));
    const { user } = await rpc.call(IdentityRpc.register, { email: 'rita.rollout@example.eu', password: 'Wellen am Nordseestrand', firstName: 'Rita', lastName: 'Rollout' });
    const actor = { userId: user.id, platformRoles: [] as [] };
    const stream = async (tokens: number, subject: string) => {
      const conversation = await rpc.call(ChatRpc.createConversation, { workspace: 'private' }, { actor });
      const sub = new StreamSubscriber<StreamFrame>(await env.nats(), withPrefix(env.prefix, subject), 10_000, (f) => f.type === 'done' || f.type === 'error');
      await rpc.call(ChatRpc.streamMessage, { conversationId: conversation.id, content: `#tokens=${tokens} go`, stream: { subject, window: 64 } }, { actor });
      const frames: StreamFrame[] = [];
      const done = (async () => {
        for await (const f of sub.frames()) {
          frames.push(f);
          sub.ack(f.seq);
        }
        return frames;
      })();
      return { conversation, done };
    };
    const short = await stream(40, 'ally.stream.test.rollout-short'); // ~0.8 s
    const long = await stream(1000, 'ally.stream.test.rollout-long'); // ~20 s
    await new Promise((r) => setTimeout(r, 300));
    await chat.close();

    expect((await short.done).at(-1)).toMatchObject({ type: 'done' });
    const longFrames = await long.done;
    expect(longFrames.at(-1)).toMatchObject({ type: 'error', problem: { status: 503 } });
    expect(longFrames.some((f) => f.type === 'delta')).toBe(true);
    const rows = await env.sql<{ role: string; status: string }>(`SELECT role, status FROM chat.messages WHERE conversation_id = $1 ORDER BY created_at`, [long.conversation.id]);
    expect(rows).toEqual([
      { role: 'user', status: 'complete' },
      { role: 'assistant', status: 'aborted' },
    ]);
    expect(await env.sql(`SELECT 1 FROM chat.outbox WHERE type = 'chat.completion.recorded' AND payload->'data'->>'userId' = $1`, [user.id])).toHaveLength(2);
  });

  it('waits for a turn still being prepared when the stop comes, and ends it as it ends answers under way', async () => {
    const chat = await env.start(chatService, chatEnv(llm, { QUOTA_PROVIDER: 'none', SHUTDOWN_GRACE_MS: '4000' }));
    const { user } = await rpc.call(IdentityRpc.register, { email: 'paul.prep@example.eu', password: 'Wellen am Nordseestrand', firstName: 'Paul', lastName: 'Prep' });
    const actor = { userId: user.id, platformRoles: [] as [] };
    const conversation = await rpc.call(ChatRpc.createConversation, { workspace: 'private' }, { actor });
    const subject = 'ally.stream.test.rollout-prepared';
    const sub = new StreamSubscriber<StreamFrame>(await env.nats(), withPrefix(env.prefix, subject), 15_000, (f) => f.type === 'done' || f.type === 'error');
    // The turn's read waits behind a lock: the stop finds it being prepared, not yet answering.
    const blocker = await env.connect();
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE chat.data_keys IN ACCESS EXCLUSIVE MODE');
    const accepted = rpc.call(ChatRpc.streamMessage, { conversationId: conversation.id, content: '#tokens=1000 go', stream: { subject, window: 64 } }, { actor, timeoutMs: 15_000 });
    await new Promise((r) => setTimeout(r, 300));
    const stopped = chat.close();
    await new Promise((r) => setTimeout(r, 300));
    await blocker.query('COMMIT');
    await blocker.end();
    await accepted;
    const frames: StreamFrame[] = [];
    for await (const f of sub.frames()) {
      frames.push(f);
      sub.ack(f.seq);
    }
    await stopped;
    // Ended with the restart's error, not cut off with the connection; what was written kept and billed.
    expect(frames.at(-1)).toMatchObject({ type: 'error', problem: { status: 503 } });
    const rows = await env.sql<{ role: string; status: string }>(`SELECT role, status FROM chat.messages WHERE conversation_id = $1 ORDER BY created_at`, [conversation.id]);
    if (frames.some((f) => f.type === 'delta')) expect(rows).toEqual([{ role: 'user', status: 'complete' }, { role: 'assistant', status: 'aborted' }]);
  });
});

describe('a streamed message the gateway gave up on', () => {
  let world: ChatWorld;

  beforeAll(async () => {
    world = await startChatWorld({ llm: { latencyPerTokenMs: 20 }, gateway: { RPC_TIMEOUT_MS: '1000' } });
  });

  afterAll(async () => {
    await world?.close();
  });

  it('is cut off, not kept, and billed only for what was generated after the client heard 504 (chat took longer than the gateway waits to accept it)', async () => {
    const { http, env, llm } = world;
    const token = (await http.post('/v1/auth/register', { email: 'ole@example.eu', password: 'Wellen am Nordseestrand', firstName: 'Ole', lastName: 'Hansen' })).body.accessToken;
    const conversation = (await http.post('/v1/conversations', { workspace: 'private' }, token)).body;
    // Chat's read of the turn waits behind a lock for longer than the gateway waits for chat.
    const blocker = await env.connect();
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE chat.data_keys IN ACCESS EXCLUSIVE MODE');
    try {
      const res = await fetch(`${world.base}/v1/conversations/${conversation.id}/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'text/event-stream' },
        body: JSON.stringify({ content: '#tokens=100 Bitte ausführlich' }),
      });
      expect(res.status).toBe(504);
    } finally {
      await blocker.query('COMMIT');
      await blocker.end();
    }
    // Chat goes on once the lock is gone, reaches the provider, and is told at its first frame that nobody listens.
    const call = await llm.waitForRequest({ operation: 'chat.completions' });
    await waitFor(async () => llm.requests({ operation: 'chat.completions' }).find((r) => r.id === call.id && r.aborted), 'the provider call to be aborted', 4_000);
    // Nothing the client never saw is kept as a turn (a retry would have doubled it); the tokens generated before the cancel are billed.
    const usage = await waitFor(async () => (await env.sql(`SELECT payload FROM chat.outbox WHERE subject LIKE '%completion.recorded'`))[0]?.payload, 'the usage of the cut-off answer');
    expect(usage.data.completionTokens).toBeLessThan(100);
    expect((await http.get(`/v1/conversations/${conversation.id}`, token)).body.messages).toEqual([]);
  });
});

describe('completions that take their time', () => {
  let world: ChatWorld;

  beforeAll(async () => {
    world = await startChatWorld({ llm: { latencyPerTokenMs: 50 }, gateway: { COMPLETION_TIMEOUT_MS: '1500' } });
  });

  afterAll(async () => {
    await world?.close();
  });

  it('is a 504 the openai SDK does not retry (each retry would be generated, cut off and billed again), and chat stops the provider call', async () => {
    const { http, llm } = world;
    const token = (await http.post('/v1/auth/register', { email: 'geduld@example.eu', password: 'Wellen am Nordseestrand', firstName: 'Gerd', lastName: 'Geduld' })).body.accessToken;
    const key = (await http.post('/v1/me/api-keys', { name: 'sdk', workspace: 'private' }, token)).body.key;
    // The SDK as a user has it: its own retries on.
    const client = new OpenAI({ apiKey: key, baseURL: `${world.base}/v1` });
    llm.clearRequests();
    await expect(client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: '#tokens=100 Bitte ausführlich' }] })).rejects.toMatchObject({ status: 504 });
    expect(llm.requests({ operation: 'chat.completions' })).toHaveLength(1);
    await waitFor(async () => llm.requests({ operation: 'chat.completions' }).find((r) => r.aborted), 'the provider call to be aborted', 4_000);
  });

  it('sends the SSE headers, with the residency receipt, once the provider took the request, not with the first token', async () => {
    const { http, llm } = world;
    const token = (await http.post('/v1/auth/register', { email: 'kopf@example.eu', password: 'Wellen am Nordseestrand', firstName: 'Kai', lastName: 'Kopf' })).body.accessToken;
    const conversation = (await http.post('/v1/conversations', { workspace: 'private' }, token)).body;
    llm.setLatency({ firstTokenLatencyMs: 3_000, latencyPerTokenMs: 0 });
    try {
      const asked = Date.now();
      const res = await fetch(`${world.base}/v1/conversations/${conversation.id}/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'text/event-stream' },
        body: JSON.stringify({ content: 'Denk in Ruhe nach' }),
      });
      expect(res.status).toBe(200);
      expect(Date.now() - asked).toBeLessThan(2_000);
      expect(JSON.parse(res.headers.get('x-ally-residency')!)).toMatchObject({ euResident: true });
      expect(await res.text()).toContain('event: done');
    } finally {
      llm.setLatency({ firstTokenLatencyMs: 0, latencyPerTokenMs: 50 });
    }
  });
});

describe('a completion whose quota check billing does not answer in time', () => {
  let world: ChatWorld;

  beforeAll(async () => {
    world = await startChatWorld({ chat: { QUOTA_PROVIDER: 'billing' } });
  });

  afterAll(async () => {
    await world?.close();
  });

  it("is chat's 504, which the openai SDK may retry: nothing was generated (only the gateway's own wait running out says x-should-retry: false)", async () => {
    const { http, llm, env } = world;
    // billing as a replica that takes the question and never answers.
    const asked: string[] = [];
    const silent = (await env.nats()).subscribe(env.subject(BillingRpc.quotaCheck.subject), { queue: 'billing', callback: (_err, msg) => void asked.push(msg.subject) });
    try {
      const token = (await http.post('/v1/auth/register', { email: 'quote@example.eu', password: 'Wellen am Nordseestrand', firstName: 'Quinn', lastName: 'Quote' })).body.accessToken;
      const key = (await http.post('/v1/me/api-keys', { name: 'sdk', workspace: 'private' }, token)).body.key;
      llm.clearRequests();
      const client = new OpenAI({ apiKey: key, baseURL: `${world.base}/v1`, maxRetries: 1 });
      await expect(client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hallo' }] })).rejects.toMatchObject({ status: 504 });
      // Asked again by the SDK: two checks, no provider call.
      expect(asked).toHaveLength(2);
      expect(llm.requests({ operation: 'chat.completions' })).toEqual([]);
    } finally {
      silent.unsubscribe();
    }
  });
});

describe('a chat replica that dies mid-answer while NATS stays up', () => {
  let env: TestEnv;
  let llm: OpenAIEmulator;
  let chat: ChildProcess | undefined;

  afterAll(async () => {
    chat?.kill('SIGKILL');
    await env?.close();
    await llm?.close();
  });

  it('ends the SSE answer with an error within the silence limit, not after minutes of nothing', async () => {
    env = await createTestEnv();
    llm = await startOpenAIEmulator({ latencyPerTokenMs: 5 });
    await env.start(identityService);
    // chat as a process of its own (npm test builds dist/ first), so it can die the way a pod does.
    const vars = chatEnv(llm, { QUOTA_PROVIDER: 'none' });
    await env.migrate(chatService, vars);
    chat = spawn(process.execPath, ['services/chat/dist/main.js'], { env: { PATH: process.env.PATH ?? '', ...env.envFor(chatService, vars), LOG_LEVEL: 'info' } });
    let out = '';
    chat.stdout!.on('data', (d) => (out += d));
    await waitFor(async () => out.includes('chat started') || undefined, 'chat to start', 20_000);
    const base = (await env.start(gatewayService)).url;
    const http = httpClient(base);
    const token = (await http.post('/v1/auth/register', { email: 'pia@example.eu', password: 'Wellen am Nordseestrand', firstName: 'Pia', lastName: 'Lorenz' })).body.accessToken;
    const conversation = (await http.post('/v1/conversations', { workspace: 'private' }, token)).body;
    // The model says a little, then thinks: chat's heartbeats are all the gateway hears.
    llm.hangNext({ afterTokens: 2 });
    const res = await fetch(`${base}/v1/conversations/${conversation.id}/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ content: 'Erzähl mir etwas' }),
    });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    while (!text.includes('event: delta')) text += decoder.decode((await reader.read()).value);
    await new Promise((r) => setTimeout(r, STREAM_HEARTBEAT_MS * 1.5)); // heartbeats keep it open meanwhile
    expect(text).not.toContain('event: error');

    const killedAt = Date.now();
    chat.kill('SIGKILL');
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value);
    }
    const waited = Date.now() - killedAt;
    expect(text).toMatch(/event: error\ndata: .*"status":50[234]/);
    expect(waited).toBeGreaterThanOrEqual(STREAM_SILENCE_LIMIT_MS - STREAM_HEARTBEAT_MS);
    expect(waited).toBeLessThan(STREAM_SILENCE_LIMIT_MS + 3_000);
    // The provider's connection went with the process.
    await llm.waitForRequest({ aborted: true }, 5_000);
  }, 60_000);
});

describe('a gateway told to stop', () => {
  let world: ChatWorld;

  beforeAll(async () => {
    world = await startChatWorld({ llm: { latencyPerTokenMs: 20 } });
  });

  afterAll(async () => {
    await world?.close();
  });

  /** Someone signed up through `http`, with a private conversation to write in. */
  const newUserWithConversation = async (http: ReturnType<typeof httpClient>, firstName: string) => {
    const token = (await http.post('/v1/auth/register', { email: `${firstName.toLowerCase()}@example.eu`, password: 'Wellen am Nordseestrand', firstName, lastName: 'Stopp' })).body.accessToken as string;
    const conversation = (await http.post('/v1/conversations', { workspace: 'private' }, token)).body as { id: string };
    return { token, conversation };
  };

  it('lets a streamed answer finish, and does not wait for connections that carry no request', async () => {
    const { http, env } = world;
    const { token, conversation } = await newUserWithConversation(http, 'Gesa');
    // A spare connection that never sends a request (a browser's preconnect): it held the stop for over a minute.
    const { port } = new URL(world.base);
    const spare = connect(Number(port), '127.0.0.1');
    await once(spare, 'connect');
    const res = await fetch(`${world.base}/v1/conversations/${conversation.id}/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ content: '#tokens=60 Erzähl' }), // ~1.2 s
    });
    const body = res.text();
    await new Promise((r) => setTimeout(r, 200));
    const started = Date.now();
    const spareClosed = once(spare, 'close');
    await env.stop(world.gateway);
    expect(Date.now() - started).toBeLessThan(5_000);
    await spareClosed;
    expect(await body).toContain('event: done');
  });

  it('stops what would outlast its grace period as a client leaving would: chat aborts the provider call, the client hears why', async () => {
    const { env, llm } = world;
    // A gateway of its own (the test before stopped the world's), with a short grace period.
    const gateway = await env.start(gatewayService, { SHUTDOWN_GRACE_MS: '3000' });
    const http = httpClient(gateway.url);
    const { token, conversation } = await newUserWithConversation(http, 'Sina');
    llm.clearRequests();
    const ask = (accept: string, content: string) =>
      fetch(`${gateway.url}/v1/conversations/${conversation.id}/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept },
        body: JSON.stringify({ content }),
      });
    const streamed = await ask('text/event-stream', '#tokens=600 Lang'); // ~12 s
    const streamedBody = streamed.text();
    const plain = ask('application/json', '#tokens=600 Auch lang').then(async (r) => ({ status: r.status, body: await r.json() }));
    await waitFor(async () => (llm.requests({ operation: 'chat.completions' }).length === 2 ? true : undefined), 'both answers to be under way');
    const started = Date.now();
    await env.stop(gateway);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(await streamedBody).toMatch(/event: error\ndata: .*service restarted/);
    expect(await plain).toMatchObject({ status: 503 });
    // Neither answer goes on being generated for nobody.
    await waitFor(async () => (llm.requests({ operation: 'chat.completions' }).every((r) => r.aborted) ? true : undefined), 'the provider calls to be aborted', 5_000);
  });

  it('stops answers still being prepared when it stops: the clients hear 503 (ask again) and chat keeps nothing of them', async () => {
    const { env, llm } = world;
    // 4 s of grace: answers are stopped after 2 s, then 1.5 s for chat to hear it and the clients to be told.
    const gateway = await env.start(gatewayService, { SHUTDOWN_GRACE_MS: '4000' });
    const http = httpClient(gateway.url);
    const { token, conversation } = await newUserWithConversation(http, 'Vera');
    const key = (await http.post('/v1/me/api-keys', { name: 'stop', workspace: 'private' }, token)).body.key;
    llm.clearRequests();
    // Chat's policy read waits behind a lock: the stop finds both calls being prepared, before chat listens to the stream's controls.
    const blocker = await env.connect();
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE chat.erased_subjects IN ACCESS EXCLUSIVE MODE');
    const streamed = fetch(`${gateway.url}/v1/conversations/${conversation.id}/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ content: '#tokens=200 Lang' }), // ~4 s
    }).then(async (r) => ({ status: r.status, body: await r.text() }));
    const compatible = fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: '#tokens=200 Auch lang' }] }),
    }).then(async (r) => ({ status: r.status, body: await r.text() }));
    // The lock goes once the gateway has called off both (chat, not yet listening, did not hear it).
    const nats = await env.nats();
    const cancels = nats.subscribe(env.subject('ally.stream.gateway.*.ctl'));
    const calledOff = new Set<string>();
    const bothCalledOff = (async () => {
      for await (const m of cancels) if (calledOff.add(m.subject).size === 2) return;
    })();
    await new Promise((r) => setTimeout(r, 300));
    const stopped = env.stop(gateway);
    await bothCalledOff;
    cancels.unsubscribe();
    await blocker.query('COMMIT');
    await blocker.end();
    await stopped;
    expect((await streamed).status).toBe(503);
    expect((await compatible).status).toBe(503);
    // Chat heard the stop once prepared: no answer goes on for nobody, and the conversation keeps no turn of it.
    await waitFor(async () => (llm.requests({ operation: 'chat.completions' }).every((r) => r.aborted) ? true : undefined), 'the provider calls to be aborted', 5_000);
    await new Promise((r) => setTimeout(r, 500));
    expect(await env.sql(`SELECT role, status FROM chat.messages WHERE conversation_id = $1`, [conversation.id])).toEqual([]);
  });
});
