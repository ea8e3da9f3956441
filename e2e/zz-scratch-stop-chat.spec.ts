import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { chatService } from '@ally/chat';
import { startOpenAIEmulator, type OpenAIEmulator } from '@ally/emulators';
import { gatewayService } from '@ally/gateway';
import { identityService } from '@ally/identity';
import { createTestEnv, httpClient, type TestEnv } from '@ally/testing';
import { chatEnv } from './service-env.js';
import { spawnService, sleep } from './zz-scratch-stop-helper.js';

describe('chat SIGTERM', () => {
  let env: TestEnv;
  let llm: OpenAIEmulator;
  let base: string;
  let http: ReturnType<typeof httpClient>;
  let token: string;
  let chatVars: Record<string, string>;
  beforeAll(async () => {
    env = await createTestEnv();
    llm = await startOpenAIEmulator({ latencyPerTokenMs: 20 });
    await env.start(identityService);
    await env.migrate(chatService);
    const gw = await env.start(gatewayService, { AUTH_RATE_LIMIT_PER_MINUTE: '10000' });
    base = gw.url;
    http = httpClient(base);
    chatVars = chatEnv(llm, { QUOTA_PROVIDER: 'none', SHUTDOWN_GRACE_MS: '4000' });
  });
  afterAll(async () => { await env?.close(); await llm?.close(); });

  const ask = async (accept: string, content: string, conv: string) => {
    const t0 = Date.now();
    try {
      const res = await fetch(`${base}/v1/conversations/${conv}/messages`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept }, body: JSON.stringify({ content }) });
      const text = await res.text();
      return { status: res.status, ms: Date.now() - t0, tail: text.slice(-250) };
    } catch (e) { return { status: -1, ms: Date.now() - t0, tail: String(e) }; }
  };

  it('answers running and answers in preparation', async () => {
    token = (await http.post('/v1/auth/register', { email: 'c@example.eu', password: 'Wellen am Nordseestrand', firstName: 'C', lastName: 'C' })).body.accessToken;
    for (const mode of ['running', 'preparing']) {
      const proc = spawnService(env, chatService, chatVars);
      await proc.ready;
      const convs = [] as string[];
      for (let i = 0; i < 4; i++) convs.push((await http.post('/v1/conversations', { workspace: 'private' }, token)).body.id);
      let blocker: any;
      if (mode === 'preparing') {
        blocker = await env.connect();
        await blocker.query('BEGIN');
        await blocker.query('LOCK TABLE chat.data_keys IN ACCESS EXCLUSIVE MODE');
      }
      const reqs = [
        ask('text/event-stream', '#tokens=40 short', convs[0]),
        ask('text/event-stream', '#tokens=600 long', convs[1]),
        ask('application/json', '#tokens=40 short', convs[2]),
        ask('application/json', '#tokens=600 long', convs[3]),
      ];
      await sleep(400);
      const tk = Date.now();
      proc.p.kill('SIGTERM');
      if (blocker) { await sleep(500); await blocker.query('COMMIT'); await blocker.end(); }
      const res = await Promise.all(reqs);
      const ex = await proc.exited;
      const rows = await env.sql(`SELECT conversation_id, role, status FROM chat.messages WHERE conversation_id = ANY($1::uuid[]) ORDER BY created_at`, [convs]);
      const outbox = await env.sql(`SELECT count(*)::int n FROM chat.outbox WHERE sent_at IS NULL`);
      console.log(mode, JSON.stringify({ ex, exitAfter: ex.at - tk, res, rows: rows.map((r: any) => `${convs.indexOf(r.conversation_id)}:${r.role}:${r.status}`), outbox }), '\n', proc.out.filter((l) => /shutting|stopped|error|ERR|warn|waiting/i.test(l)).slice(0, 12).map((l) => l.slice(0, 300)).join('\n'));
    }
  }, 120_000);
});
