import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { appendFileSync } from 'node:fs';
import { startPlatformWorld, type PlatformWorld } from './platform-world.js';

const PASSWORD = 'Morgentau auf der Wiese';
const OUT = '/tmp/zz-scratch-chatprobe-b.log';
const log = (k: string, v: unknown) => appendFileSync(OUT, `${k}: ${JSON.stringify(v)}\n`);

describe('chatprobe b', () => {
  let world: PlatformWorld;
  beforeAll(async () => {
    world = await startPlatformWorld({ gateway: true, privacy: false, chat: { PROVIDER_TIMEOUT_MS: '1500' } });
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
  const sent = () => world.llm.requests().map((q) => `${q.operation}@${q.endpoint}${q.fault ? '!' + q.fault : ''}:${q.status}`);
  const models = async (token: string, ws?: string) => {
    const r = await world.http.get(`/v1/models${ws ? `?workspace=${ws}` : ''}`, token);
    return { status: r.status, ids: r.body?.data?.map((m: any) => `${m.id}/${m.region}/${m.euResident}`) ?? r.body };
  };

  it('models and org policy', async () => {
    const eu = await user(true);
    const open = await user(false);
    log('models restricted', await models(eu.token));
    log('models open', await models(open.token));
    const org = (await world.http.post('/v1/orgs', { name: 'Probe GmbH' }, open.token)).body;
    log('models open in org (default policy)', await models(open.token, org.id));
    let p = await world.http.patch(`/v1/orgs/${org.id}/policy`, { euOnly: false, allowedModels: ['gpt-4o'] }, open.token);
    log('policy gpt-4o only', { status: p.status, body: p.body });
    log('models open in org gpt-4o only', await models(open.token, org.id));
    const c = await conv(open.token, org.id);
    let r = await world.http.post(`/v1/conversations/${c}/messages`, { content: 'Hallo' }, open.token);
    log('org gpt-4o only, default model', { status: r.status, model: r.body.model, dep: r.body.residency?.deployment, detail: r.body.detail });
    r = await world.http.post(`/v1/conversations/${c}/messages`, { content: 'Hallo', model: 'gpt-4o-mini' }, open.token);
    log('org gpt-4o only, gpt-4o-mini', { status: r.status, detail: r.body.detail, type: r.body.type });
    r = await world.http.post(`/v1/conversations/${c}/messages`, { content: 'Hallo', model: 'nonexistent-model' }, open.token);
    log('org unknown model', { status: r.status, detail: r.body.detail });
    // restricted user in that org
    p = await world.http.patch('/v1/me/settings', { restrictToEu: true }, open.token);
    log('models restricted in org gpt-4o only', await models(open.token, org.id));
    r = await world.http.post(`/v1/conversations/${c}/messages`, { content: 'Hallo' }, open.token);
    log('restricted + org gpt-4o only, default', { status: r.status, detail: r.body.detail, type: r.body.type });
    await world.http.patch('/v1/me/settings', { restrictToEu: false }, open.token);
    p = await world.http.patch(`/v1/orgs/${org.id}/policy`, { euOnly: true, allowedModels: ['gpt-4o', 'gpt-4o-mini'] }, open.token);
    log('models org euOnly gpt-4o+mini', await models(open.token, org.id));
    r = await world.http.post(`/v1/conversations/${c}/messages`, { content: 'Hallo', model: 'gpt-4o' }, open.token);
    log('org euOnly gpt-4o', { status: r.status, detail: r.body.detail });
    p = await world.http.patch(`/v1/orgs/${org.id}/policy`, { allowedModels: [] }, open.token);
    log('policy allowedModels []', { status: p.status, body: p.body });
    log('models org []', await models(open.token, org.id));
    r = await world.http.post(`/v1/conversations/${c}/messages`, { content: 'Hallo' }, open.token);
    log('org [] default', { status: r.status, detail: r.body.detail });
    p = await world.http.patch(`/v1/orgs/${org.id}/policy`, { allowedModels: ['gpt-4o', 'bogus'] }, open.token);
    log('policy bogus', { status: p.status, body: p.body });
    p = await world.http.patch(`/v1/orgs/${org.id}/policy`, { allowedModels: null, euOnly: false }, open.token);
    log('policy null', { status: p.status, body: p.body });
    log('models org null', await models(open.token, org.id));
    // other tenant
    log('models other user in org', await models(eu.token, org.id));
    log('models bad ws', await models(eu.token, 'nonsense'));
    // API key in org asking private
    const key = (await world.http.post('/v1/me/api-keys', { name: 'k', workspace: org.id }, open.token)).body.key;
    const rk = await world.http.request('GET', '/v1/models?workspace=private', { headers: { authorization: `Bearer ${key}` } });
    log('key org asks private', { status: rk.status, body: rk.body });
    const rk2 = await world.http.request('GET', '/v1/models', { headers: { authorization: `Bearer ${key}` } });
    log('key org models', { status: rk2.status, ids: rk2.body?.data?.map((m: any) => m.id) });
  });

  it('fallback', async () => {
    const eu = await user(true);
    const c = await conv(eu.token);
    world.llm.failNext({ status: 500, deployment: 'gpt-4o-mini-swc' });
    let r = await world.http.post(`/v1/conversations/${c}/messages`, { content: 'A' }, eu.token);
    log('eu 500 swc', { status: r.status, dep: r.body.residency?.deployment, eu: r.body.residency?.euResident, sent: sent() });
    world.llm.clearRequests();
    world.llm.failNext({ status: 429, times: 10, retryAfterSeconds: 1 });
    r = await world.http.post(`/v1/conversations/${c}/messages`, { content: 'B' }, eu.token);
    log('eu all 429', { status: r.status, detail: r.body.detail, ra: r.headers.get('retry-after'), sent: sent() });
    world.llm.reset();
    world.llm.hangNext({ deployment: 'gpt-4o-mini-swc' });
    r = await world.http.post(`/v1/conversations/${c}/messages`, { content: 'C' }, eu.token);
    log('eu hang swc', { status: r.status, dep: r.body.residency?.deployment, sent: sent() });
    world.llm.reset();
    // mistral fails: fallback never to another family
    world.llm.failNext({ status: 503, endpoint: 'mistral', times: 5 });
    r = await world.http.post(`/v1/conversations/${c}/messages`, { content: 'D', model: 'mistral-small' }, eu.token);
    log('eu mistral 503', { status: r.status, detail: r.body.detail, sent: sent() });
    world.llm.reset();
    // open user: all EU fail -> global
    const open = await user(false);
    const c2 = await conv(open.token);
    world.llm.failNext({ status: 500, times: 3, kind: 'azure' } as any);
    world.llm.failNext({ status: 500, endpoint: 'openai-eu' });
    r = await world.http.post(`/v1/conversations/${c2}/messages`, { content: 'E mail anna@example.eu' }, open.token);
    log('open all-EU fail', { status: r.status, res: r.body.residency, sent: sent(), msgs: world.llm.requests({ operation: 'chat.completions' }).map((q) => (q.messages.at(-1) as any).content) });
    world.llm.reset();
    // streamed fallback
    world.llm.failNext({ status: 500, deployment: 'gpt-4o-mini-swc' });
    const s = await world.http.request('POST', `/v1/conversations/${c}/messages`, { body: { content: 'F' }, token: eu.token, headers: { accept: 'text/event-stream' } });
    const text = typeof s.body === 'string' ? s.body : JSON.stringify(s.body);
    log('stream fallback', { status: s.status, tail: text.slice(-600), sent: sent() });
    world.llm.reset();
    // compat fallback & header
    const key = (await world.http.post('/v1/me/api-keys', { name: 'k', workspace: 'private' }, eu.token)).body.key;
    world.llm.failNext({ status: 500, deployment: 'gpt-4o-mini-swc' });
    const cr = await world.http.request('POST', '/v1/chat/completions', { body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'G' }] }, headers: { authorization: `Bearer ${key}` } });
    log('compat fallback', { status: cr.status, hdr: cr.headers.get('x-ally-residency'), sent: sent() });
    world.llm.reset();
    // moderation for restricted user when openai-eu moderation fails
    world.llm.failNext({ status: 500, endpoint: 'openai-eu', operation: 'moderations', times: 3 } as any);
    r = await world.http.post(`/v1/conversations/${c}/messages`, { content: 'H forbidden-topic', model: 'mistral-small' }, eu.token);
    log('eu moderation down', { status: r.status, sent: sent() });
    world.llm.reset();
    // open user mistral & gpt-4o moderation
    r = await world.http.post(`/v1/conversations/${c2}/messages`, { content: 'I forbidden-topic', model: 'gpt-4o' }, open.token);
    log('open gpt-4o forbidden', { status: r.status, detail: r.body.detail, sent: sent() });
    world.llm.reset();
    world.llm.failNext({ status: 500, endpoint: 'openai-eu', operation: 'moderations', times: 3 } as any);
    r = await world.http.post(`/v1/conversations/${c2}/messages`, { content: 'J anna@example.eu', model: 'gpt-4o' }, open.token);
    log('open gpt-4o, eu moderation down', { status: r.status, sent: sent(), inputs: world.llm.requests({ operation: 'moderations' }).map((q) => q.input) });
  });
});
