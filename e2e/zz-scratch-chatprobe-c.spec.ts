import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { appendFileSync } from 'node:fs';
import { startPlatformWorld, type PlatformWorld } from './platform-world.js';

const PASSWORD = 'Morgentau auf der Wiese';
const OUT = '/tmp/zz-scratch-chatprobe-c.log';
const log = (k: string, v: unknown) => appendFileSync(OUT, `${k}: ${JSON.stringify(v)}\n`);

describe('chatprobe c', () => {
  let world: PlatformWorld;
  beforeAll(async () => {
    world = await startPlatformWorld({ gateway: true, privacy: false });
  }, 60000);
  afterAll(async () => world?.close());
  afterEach(() => world.llm.reset());

  let n = 0;
  const user = async (restrictToEu: boolean) => {
    const email = `probe${n++}-${Date.now()}@example.eu`;
    const reg = await world.http.post('/v1/auth/register', { email, password: PASSWORD, firstName: 'Ida', lastName: 'Brandt' });
    const token = reg.body.accessToken as string;
    if (!restrictToEu) expect((await world.http.patch('/v1/me/settings', { restrictToEu: false }, token)).status).toBe(200);
    return { token, id: reg.body.user.id as string };
  };
  const conv = async (token: string, workspace = 'private') => (await world.http.post('/v1/conversations', { workspace }, token)).body.id as string;
  const brief = (r: any) => ({ status: r.status, detail: r.body?.detail, errors: r.body?.errors, content: typeof r.body?.content === 'string' ? r.body.content.slice(0, 80) : undefined });

  it('trimming and long messages', async () => {
    const { token } = await user(true);
    const c = await conv(token);
    const long = (i: number) => `${i}`.padEnd(99_000, ' lang');
    for (let i = 0; i < 3; i++) {
      world.llm.clearRequests();
      const r = await world.http.post(`/v1/conversations/${c}/messages`, { content: long(i), model: 'mistral-small' }, token);
      const q = world.llm.requests({ operation: 'chat.completions' }).at(-1);
      log(`long ${i}`, { ...brief(r), sentMsgs: q?.messages.map((m: any) => `${m.role}:${String(m.content).slice(0, 6)}:${String(m.content).length}`) });
    }
    world.llm.clearRequests();
    const r = await world.http.post(`/v1/conversations/${c}/messages`, { content: 'kurz', model: 'mistral-small' }, token);
    log('short after long', { ...brief(r), sentMsgs: world.llm.requests({ operation: 'chat.completions' }).at(-1)?.messages.map((m: any) => `${m.role}:${String(m.content).length}`) });
    // one message too long for mistral
    const cjk = '漢'.repeat(100_000);
    const c2 = await conv(token);
    log('cjk 100k mistral', brief(await world.http.post(`/v1/conversations/${c2}/messages`, { content: cjk, model: 'mistral-small' }, token)));
    log('cjk 100k mini', brief(await world.http.post(`/v1/conversations/${c2}/messages`, { content: cjk }, token)));
    log('100001 chars', brief(await world.http.post(`/v1/conversations/${c2}/messages`, { content: 'a'.repeat(100_001) }, token)));
    const emoji = '😀'.repeat(50_000);
    log('50k emoji', brief(await world.http.post(`/v1/conversations/${c2}/messages`, { content: emoji }, token)));
    log('50001 emoji', brief(await world.http.post(`/v1/conversations/${c2}/messages`, { content: '😀'.repeat(50_001) }, token)));
    // streamed too long
    const s = await world.http.request('POST', `/v1/conversations/${c2}/messages`, { body: { content: cjk, model: 'mistral-small' }, token, headers: { accept: 'text/event-stream' } });
    log('stream cjk mistral', { status: s.status, ct: s.headers.get('content-type'), body: typeof s.body === 'string' ? s.body.slice(0, 300) : s.body });
    // compat too long
    const key = (await world.http.post('/v1/me/api-keys', { name: 'k', workspace: 'private' }, token)).body.key;
    const cr = await world.http.request('POST', '/v1/chat/completions', { body: { model: 'mistral-small', messages: [{ role: 'user', content: long(1) }, { role: 'user', content: long(2) }] }, headers: { authorization: `Bearer ${key}` } });
    log('compat too long', { status: cr.status, body: cr.body });
    const cr2 = await world.http.request('POST', '/v1/chat/completions', { body: { model: 'mistral-small', max_tokens: 31999, messages: [{ role: 'user', content: 'hi' }] }, headers: { authorization: `Bearer ${key}` } });
    log('compat max_tokens 31999', { status: cr2.status, body: cr2.body });
    const cr3 = await world.http.request('POST', '/v1/chat/completions', { body: { model: 'mistral-small', max_tokens: 32000, messages: [{ role: 'user', content: 'hi' }] }, headers: { authorization: `Bearer ${key}` } });
    log('compat max_tokens 32000', { status: cr3.status, detail: cr3.body?.detail });
  });

  it('empty and unicode edge cases', async () => {
    const { token } = await user(false);
    const c = await conv(token);
    const cases: Record<string, string> = {
      empty: '', spaces: '   ', nl: '\n\n', zwsp: '\u200b', shy: '\u00ad', bom: '\ufeff', nul: 'a\u0000b', lone: 'a\ud800b', lonelow: '\udc00', rlo: 'abc\u202edef', nbsp: '\u00a0', ideosp: '\u3000',
      combining: 'e\u0301'.repeat(1000), zalgo: 'Z' + '\u0300'.repeat(5000), crlf: 'a\r\nb', emojizwj: '👩‍👩‍👧‍👦', tag: '\u{E0041}', nonchar: '\uffff', priv: '\u{10FFFD}',
    };
    for (const [k, v] of Object.entries(cases)) {
      world.llm.clearRequests();
      const r = await world.http.post(`/v1/conversations/${c}/messages`, { content: v, model: 'gpt-4o' }, token);
      const sentc = world.llm.requests({ operation: 'chat.completions' }).at(-1)?.messages.at(-1) as any;
      log(`unicode ${k}`, { ...brief(r), sent: sentc ? JSON.stringify(sentc.content).slice(0, 60) : null });
    }
    const g = await world.http.get(`/v1/conversations/${c}`, token);
    log('history', { status: g.status, n: g.body.messages?.length });
    const key = (await world.http.post('/v1/me/api-keys', { name: 'k', workspace: 'private' }, token)).body.key;
    for (const msgs of [[{ role: 'user', content: '' }], [{ role: 'user', content: [] }], [{ role: 'system', content: 'x' }], [{ role: 'assistant', content: 'x' }], [{ role: 'user', content: 'a\ud800' }], [{ role: 'user', content: 'x', name: 'a'.repeat(64) }]]) {
      world.llm.clearRequests();
      const cr = await world.http.request('POST', '/v1/chat/completions', { body: { model: 'gpt-4o', messages: msgs }, headers: { authorization: `Bearer ${key}` } });
      log('compat ' + JSON.stringify(msgs), { status: cr.status, detail: cr.body?.detail ?? cr.body?.error, sent: world.llm.requests({ operation: 'chat.completions' }).length });
    }
  });
});
