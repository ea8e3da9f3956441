import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { appendFileSync } from 'node:fs';
import { waitFor } from '@ally/testing';
import { startPlatformWorld, type PlatformWorld } from './platform-world.js';

const PASSWORD = 'Morgentau auf der Wiese';
const OUT = '/tmp/zz-scratch-chatprobe-a.log';
const log = (k: string, v: unknown) => appendFileSync(OUT, `${k}: ${JSON.stringify(v)}\n`);

describe('chatprobe a', () => {
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
  const conv = async (token: string, workspace = 'private', assistantId?: string) => {
    const r = await world.http.post('/v1/conversations', { workspace, ...(assistantId ? { assistantId } : {}) }, token);
    return r.body.id as string;
  };

  it('redaction of formats on a non-EU route', async () => {
    const { token } = await user(false);
    const id = await conv(token);
    const secrets = [
      '0170 – 1234567', '0170–1234567', '+49\u2009170\u20091234567', '+49\t170\t1234567', '+49 170\u200b1234567',
      'DE89-3704-0044-0532-0130-00', 'DE89 3704 0044\n0532 0130 00', '4111–1111–1111–1111', '4111\u200b1111\u200b1111\u200b1111',
      '４１１１ １１１１ １１１１ １１１１', 'ａｎｎａ＠ｅｘａｍｐｌｅ．ｅｕ', '＋４９ １７０ １２３４５６７', 'anna@exa\u200bmple.eu',
      'anna@example.eu', '+49 170 1234567', 'de89370400440532013000', '4111-1111-1111-1111', '4111 1111 1111 1112',
    ];
    for (const s of secrets) {
      world.llm.clearRequests();
      const r = await world.http.post(`/v1/conversations/${id}/messages`, { content: `Bitte merken: ${s} danke`, model: 'gpt-4o' }, token);
      const sent = world.llm.requests({ operation: 'chat.completions' }).map((q) => ({ ep: q.endpoint, last: (q.messages.at(-1) as any)?.content }));
      log('redact ' + JSON.stringify(s), { status: r.status, sent });
    }
  });

  it('history and assistant instructions on non-EU routes; EU routes untouched', async () => {
    const { token } = await user(false);
    const a = await world.http.post('/v1/assistants', { workspace: 'private', name: 'Helfer', instructions: 'Der Kunde ist anna@example.eu, Tel +49 170 1234567, IBAN DE89 3704 0044 0532 0130 00', model: 'gpt-4o' }, token);
    log('assistant create', { status: a.status, body: a.body });
    const id = await conv(token, 'private', a.body.id);
    const r1 = await world.http.post(`/v1/conversations/${id}/messages`, { content: 'Meine Karte 4111 1111 1111 1111, Mail bob@example.org', model: 'mistral-small' }, token);
    log('eu turn', { status: r1.status, residency: r1.body.residency, sent: world.llm.requests({ operation: 'chat.completions' }).map((q) => q.messages) });
    world.llm.clearRequests();
    const r2 = await world.http.post(`/v1/conversations/${id}/messages`, { content: 'Und jetzt?', model: 'gpt-4o' }, token);
    log('non-eu turn', { status: r2.status, residency: r2.body.residency, sent: world.llm.requests().map((q) => ({ op: q.operation, ep: q.endpoint, messages: q.messages, input: q.input })) });
    world.llm.clearRequests();
    // gpt-4o-mini for a non-restricted user: EU first
    const r3 = await world.http.post(`/v1/conversations/${id}/messages`, { content: 'Noch einmal' }, token);
    log('default turn', { status: r3.status, residency: r3.body.residency, sent: world.llm.requests().map((q) => ({ op: q.operation, ep: q.endpoint, messages: q.messages })) });
    // streamed to non-EU
    world.llm.clearRequests();
    const s = await world.http.request('POST', `/v1/conversations/${id}/messages`, { body: { content: 'Stream bitte, cc carl@example.com', model: 'gpt-4o' }, token, headers: { accept: 'text/event-stream' } });
    log('stream non-eu', { status: s.status, sent: world.llm.requests().map((q) => ({ op: q.operation, ep: q.endpoint, messages: q.messages, input: q.input })) });
  });

  it('compat endpoint: stop/params/name/parts redaction', async () => {
    const { token } = await user(false);
    const key = (await world.http.post('/v1/me/api-keys', { name: 'sdk', workspace: 'private' }, token)).body.key;
    const call = (body: any) => world.http.request('POST', '/v1/chat/completions', { body, headers: { authorization: `Bearer ${key}` } });
    world.llm.clearRequests();
    const r = await call({ model: 'gpt-4o', messages: [{ role: 'system', content: 'sys anna@example.eu' }, { role: 'user', content: 'hi', name: 'anna' }, { role: 'assistant', content: 'ok +49 170 1234567' }, { role: 'user', content: [{ type: 'text', text: 'anna@exa' }, { type: 'text', text: 'mple.eu und 4111 1111 ' }, { type: 'text', text: '1111 1111' }] }], stop: ['anna@example.eu'], user: 'anna@example.eu' });
    log('compat', { status: r.status, hdr: r.headers.get('x-ally-residency'), sent: world.llm.requests().map((q) => ({ op: q.operation, ep: q.endpoint, body: q.body, input: q.input })) });
    world.llm.clearRequests();
    const s = await world.http.request('POST', '/v1/chat/completions', { body: { model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'x anna@example.eu' }] }, headers: { authorization: `Bearer ${key}` } });
    log('compat stream', { status: s.status, hdr: s.headers.get('x-ally-residency'), sent: world.llm.requests().map((q) => ({ op: q.operation, ep: q.endpoint, msgs: q.messages })) });
  });
});
