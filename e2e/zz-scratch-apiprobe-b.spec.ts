import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { identityService } from '@ally/identity';
import { confirmEmail, httpClient, waitFor } from '@ally/testing';
import { gatewayService } from '@ally/gateway';
import { startPlatformWorld, type PlatformWorld } from './platform-world.js';

const PASSWORD = 'Leuchtturm am Deich bei Ebbe';
const log: any[] = [];
const bad: any[] = [];

describe('apiprobe B', () => {
  let w: PlatformWorld;
  let http: PlatformWorld['http'];
  beforeAll(async () => {
    w = await startPlatformWorld({ gateway: true });
    const gw = await w.env.start(gatewayService, { AUTH_RATE_LIMIT_PER_MINUTE: '100000', RATE_LIMIT_PER_MINUTE: '1000000' });
    http = httpClient(gw.url);
  }, 120_000);
  afterAll(async () => {
    writeFileSync('/tmp/zz-scratch-apiprobe-B.json', JSON.stringify({ bad, log }, null, 1));
    await w?.close();
  });

  const chk = (label: string, r: any, want: number | number[], extra?: (b: any) => string | undefined) => {
    const wants = Array.isArray(want) ? want : [want];
    const ct = r.headers.get('content-type')?.split(';')[0];
    const entry = { label, status: r.status, ct, rid: !!r.headers.get('x-request-id'), body: typeof r.body === 'string' ? r.body.slice(0, 300) : JSON.stringify(r.body)?.slice(0, 600) };
    log.push(entry);
    const problems: string[] = [];
    if (!wants.includes(r.status)) problems.push(`status ${r.status} want ${wants}`);
    if (r.status >= 400 && ct !== 'application/problem+json') problems.push(`ct ${ct}`);
    if (r.status >= 400 && (!r.body?.type || !r.body?.title || r.body?.status !== r.status || !r.body?.detail)) problems.push('problem fields');
    if (!entry.rid) problems.push('no x-request-id');
    const e = extra && r.status < 400 ? extra(r.body) : undefined;
    if (e) problems.push(e);
    if (problems.length) bad.push({ ...entry, problems });
    return r;
  };
  const keys = (o: any, ks: string[]) => {
    if (!o || typeof o !== 'object') return `not object: ${JSON.stringify(o)?.slice(0, 100)}`;
    const miss = ks.filter((k) => !(k in o));
    return miss.length ? `missing ${miss.join(',')} in ${Object.keys(o).join(',')}` : undefined;
  };
  const register = async (name: string, verify = true) => {
    const email = `${name.toLowerCase()}-${randomUUID().slice(0, 6)}@example.eu`;
    const r = chk(`register ${name}`, await http.post('/v1/auth/register', { email, password: PASSWORD, firstName: name, lastName: 'Probe', locale: 'de' }), 201, (b) =>
      keys(b, ['user', 'accessToken', 'refreshToken', 'expiresIn']),
    );
    if (verify) await confirmEmail(w.env, r.body.user.id);
    return { email, id: r.body.user.id as string, token: r.body.accessToken as string, refresh: r.body.refreshToken as string };
  };

  const inviteAndAccept = async (org: string, byToken: string, u: { email: string; token: string }, role = 'member') => {
    chk(`invite ${role}`, await http.post(`/v1/orgs/${org}/invitations`, { email: u.email, role }, byToken), 201);
    const m = await waitFor(async () => {
      const r = await http.get(`/v1/dev/mailbox?to=${encodeURIComponent(u.email)}`);
      return r.body.data.find((x: any) => /einlad|invit/i.test(x.subject + x.textContent)) ?? undefined;
    }, 'invite mail');
    const tok = m.tokens?.[0] ?? (JSON.stringify(m).match(/token=([A-Za-z0-9_-]+)/) ?? [])[1];
    return chk('accept', await http.post('/v1/invitations/accept', { token: tok }, u.token), 200);
  };
  const pageAll = async (label: string, path: string, token: string, limit: number) => {
    const ids: string[] = [];
    let cursor: string | null | undefined;
    let n = 0;
    do {
      const sep = path.includes('?') ? '&' : '?';
      const r = chk(label, await http.get(`${path}${sep}limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, token), 200, (b) => keys(b, ['data', 'nextCursor']));
      if (r.status !== 200) break;
      ids.push(...r.body.data.map((x: any) => x.id ?? x.userId));
      cursor = r.body.nextCursor;
    } while (cursor && ++n < 50);
    return ids;
  };

  it('orgs', async () => {
    const o = await register('Otto');
    const m = await register('Mia');
    const s = await register('Sven');
    const x = await register('Xaver');
    const org = chk('org create', await http.post('/v1/orgs', { name: 'Probe GmbH' }, o.token), 201, (b) => keys(b, ['id', 'name'])).body;
    chk('org create empty', await http.post('/v1/orgs', {}, o.token), 400);
    chk('org create types', await http.post('/v1/orgs', { name: 5 }, o.token), 400);
    chk('org create extra', await http.post('/v1/orgs', { name: 'Abc GmbH', plan: 'x' }, o.token), 400);
    chk('org noauth', await http.post('/v1/orgs', { name: 'Abc GmbH' }), 401);
    chk('org get', await http.get(`/v1/orgs/${org.id}`, o.token), 200, (b) => keys(b, ['id', 'name']));
    chk('org get stranger', await http.get(`/v1/orgs/${org.id}`, x.token), 404);
    chk('org get unknown', await http.get(`/v1/orgs/${randomUUID()}`, o.token), 404);
    chk('org get malformed', await http.get('/v1/orgs/abc', o.token), 400);
    chk('members stranger', await http.get(`/v1/orgs/${org.id}/members`, x.token), 404);
    chk('members malformed', await http.get('/v1/orgs/zzz/members', o.token), 400);
    await inviteAndAccept(org.id, o.token, m, 'admin');
    await inviteAndAccept(org.id, m.token, s, 'member');
    chk('invite by member', await http.post(`/v1/orgs/${org.id}/invitations`, { email: 'z@example.eu', role: 'member' }, s.token), 403);
    chk('invite by stranger', await http.post(`/v1/orgs/${org.id}/invitations`, { email: 'z@example.eu', role: 'member' }, x.token), 404);
    chk('invite owner role', await http.post(`/v1/orgs/${org.id}/invitations`, { email: 'z@example.eu', role: 'owner' }, o.token), 400);
    chk('invite empty', await http.post(`/v1/orgs/${org.id}/invitations`, {}, o.token), 400);
    chk('invite unknown org', await http.post(`/v1/orgs/${randomUUID()}/invitations`, { email: 'z@example.eu', role: 'member' }, o.token), 404);
    chk('accept bogus', await http.post('/v1/invitations/accept', { token: 'a'.repeat(40) }, x.token), [400, 404, 410]);
    chk('accept empty', await http.post('/v1/invitations/accept', {}, x.token), 400);
    chk('accept noauth', await http.post('/v1/invitations/accept', { token: 'a'.repeat(40) }), 401);
    // more members for pagination
    const more = [] as any[];
    for (let i = 0; i < 6; i++) {
      const u = await register(`Mem${String.fromCharCode(65 + i)}x`);
      await inviteAndAccept(org.id, o.token, u);
      more.push(u);
    }
    const ids = await pageAll('members page', `/v1/orgs/${org.id}/members`, s.token, 3);
    if (ids.length !== 9 || new Set(ids).size !== 9) bad.push({ label: 'members pagination', ids });
    const mem = await http.get(`/v1/orgs/${org.id}/members?limit=2`, o.token);
    log.push({ members: mem.body });
    chk('me memberships', await http.get('/v1/me', m.token), 200, (b) =>
      b.memberships?.[0] && keys(b.memberships[0], ['orgId', 'orgName', 'role']) ? keys(b.memberships[0], ['orgId', 'orgName', 'role']) : b.memberships?.[0]?.role === 'admin' ? undefined : `memberships ${JSON.stringify(b.memberships)}`,
    );
    // removal
    chk('remove by member', await http.delete(`/v1/orgs/${org.id}/members/${more[0].id}`, s.token), 403);
    chk('remove by stranger', await http.delete(`/v1/orgs/${org.id}/members/${more[0].id}`, x.token), 404);
    chk('remove nonmember', await http.delete(`/v1/orgs/${org.id}/members/${x.id}`, o.token), 404);
    chk('remove malformed', await http.delete(`/v1/orgs/${org.id}/members/nope`, o.token), 400);
    chk('remove owner by admin', await http.delete(`/v1/orgs/${org.id}/members/${o.id}`, m.token), [403, 409]);
    chk('remove by admin', await http.delete(`/v1/orgs/${org.id}/members/${more[0].id}`, m.token), 204);
    chk('remove again', await http.delete(`/v1/orgs/${org.id}/members/${more[0].id}`, m.token), 404);
    chk('removed sees org', await http.get(`/v1/orgs/${org.id}`, more[0].token), 404);
    chk('self-remove member', await http.delete(`/v1/orgs/${org.id}/members/${more[1].id}`, more[1].token), [204, 403]);
    chk('owner self remove', await http.delete(`/v1/orgs/${org.id}/members/${o.id}`, o.token), [403, 409]);
    // policy
    chk('policy', await http.patch(`/v1/orgs/${org.id}/policy`, { euOnly: true, chatRetentionDays: 30 }, o.token), 200, (b) => keys(b, ['euOnly']));
    chk('policy by member', await http.patch(`/v1/orgs/${org.id}/policy`, { euOnly: true }, s.token), 403);
    chk('policy by stranger', await http.patch(`/v1/orgs/${org.id}/policy`, { euOnly: true }, x.token), 404);
    chk('policy empty', await http.patch(`/v1/orgs/${org.id}/policy`, {}, o.token), 400);
    chk('policy types', await http.patch(`/v1/orgs/${org.id}/policy`, { euOnly: 'yes', chatRetentionDays: -1 }, o.token), 400);
    chk('policy unknown model', await http.patch(`/v1/orgs/${org.id}/policy`, { allowedModels: ['no-such-model'] }, o.token), [400, 422]);
    chk('policy models', await http.patch(`/v1/orgs/${org.id}/policy`, { allowedModels: ['gpt-4o-mini'] }, o.token), [200, 400]);
    chk('policy malformed', await http.patch(`/v1/orgs/nope/policy`, { euOnly: true }, o.token), 400);
    chk('policy unknown org', await http.patch(`/v1/orgs/${randomUUID()}/policy`, { euOnly: true }, o.token), 404);
    chk('policy null body', await http.request('PATCH', `/v1/orgs/${org.id}/policy`, { token: o.token }), 400);
  }, 180_000);

  it('chat', async () => {
    const a = await register('Chatty');
    const b = await register('Bob');
    const org = (await http.post('/v1/orgs', { name: 'Chat AG' }, a.token)).body;
    chk('models', await http.get('/v1/models', a.token), 200, (bd) => (bd.object === 'list' ? keys(bd.data?.[0], ['id', 'object', 'owned_by', 'region', 'euResident']) : 'object'));
    log.push({ models: (await http.get('/v1/models', a.token)).body });
    chk('models ws org', await http.get(`/v1/models?workspace=${org.id}`, a.token), 200);
    chk('models ws stranger', await http.get(`/v1/models?workspace=${org.id}`, b.token), [403, 404]);
    chk('models ws bad', await http.get('/v1/models?workspace=bad', a.token), 400);
    chk('models noauth', await http.get('/v1/models'), 401);
    chk('model one', await http.get('/v1/models/gpt-4o-mini', a.token), [200, 404]);
    const c = chk('conv create', await http.post('/v1/conversations', { workspace: 'private', title: 'Hallo' }, a.token), 201, (bd) => keys(bd, ['id', 'workspace', 'title'])).body;
    chk('conv create empty', await http.post('/v1/conversations', {}, a.token), 400);
    chk('conv create ws stranger', await http.post('/v1/conversations', { workspace: org.id }, b.token), [403, 404]);
    chk('conv create ws unknown', await http.post('/v1/conversations', { workspace: randomUUID() }, a.token), [403, 404]);
    chk('conv create assistant unknown', await http.post('/v1/conversations', { workspace: 'private', assistantId: randomUUID() }, a.token), [400, 404]);
    chk('conv create assistant bad', await http.post('/v1/conversations', { workspace: 'private', assistantId: 'x' }, a.token), 400);
    chk('conv create title type', await http.post('/v1/conversations', { workspace: 'private', title: 5 }, a.token), 400);
    chk('conv create extra', await http.post('/v1/conversations', { workspace: 'private', foo: 1 }, a.token), 400);
    chk('conv create no title', await http.post('/v1/conversations', { workspace: 'private' }, a.token), 201, (bd) => keys(bd, ['id', 'workspace', 'title']));
    chk('conv get', await http.get(`/v1/conversations/${c.id}`, a.token), 200, (bd) => keys(bd, ['id', 'workspace', 'title', 'messages']));
    chk('conv get other', await http.get(`/v1/conversations/${c.id}`, b.token), 404);
    chk('conv get malformed', await http.get('/v1/conversations/xyz', a.token), 400);
    chk('conv get unknown', await http.get(`/v1/conversations/${randomUUID()}`, a.token), 404);
    chk('conv list no ws', await http.get('/v1/conversations', a.token), 400);
    chk('conv list ws stranger', await http.get(`/v1/conversations?workspace=${org.id}`, b.token), [403, 404]);
    const msg = chk('msg', await http.post(`/v1/conversations/${c.id}/messages`, { content: 'Hallo Welt' }, a.token), 201, (bd) => keys(bd, ['id', 'role', 'content', 'createdAt']));
    log.push({ msg: msg.body });
    chk('conv get msgs', await http.get(`/v1/conversations/${c.id}`, a.token), 200, (bd) =>
      bd.messages?.length === 2 ? keys(bd.messages[1], ['id', 'role', 'content', 'createdAt', 'model', 'usage', 'residency']) : `messages ${bd.messages?.length}`,
    );
    log.push({ conv: (await http.get(`/v1/conversations/${c.id}`, a.token)).body });
    chk('msg other', await http.post(`/v1/conversations/${c.id}/messages`, { content: 'x' }, b.token), 404);
    chk('msg empty', await http.post(`/v1/conversations/${c.id}/messages`, {}, a.token), 400);
    chk('msg empty content', await http.post(`/v1/conversations/${c.id}/messages`, { content: '' }, a.token), 400);
    chk('msg content type', await http.post(`/v1/conversations/${c.id}/messages`, { content: 5 }, a.token), 400);
    chk('msg unknown model', await http.post(`/v1/conversations/${c.id}/messages`, { content: 'hi', model: 'nope-model' }, a.token), [400, 404, 422]);
    chk('msg malformed conv', await http.post('/v1/conversations/abc/messages', { content: 'hi' }, a.token), 400);
    chk('msg unknown conv', await http.post(`/v1/conversations/${randomUUID()}/messages`, { content: 'hi' }, a.token), 404);
    chk('msg extra', await http.post(`/v1/conversations/${c.id}/messages`, { content: 'hi', temperature: 1 }, a.token), 400);
    const sse = await fetch(`${(http as any).base ?? ''}`).catch(() => null);
    void sse;
    // message pagination in a conversation
    for (let i = 0; i < 4; i++) await http.post(`/v1/conversations/${c.id}/messages`, { content: `Frage ${i}` }, a.token);
    const msgIds: string[] = [];
    let cur: string | null = null;
    let n = 0;
    do {
      const r = chk('conv msg page', await http.get(`/v1/conversations/${c.id}?limit=3${cur ? `&cursor=${cur}` : ''}`, a.token), 200, (bd) => keys(bd, ['messages', 'nextCursor']));
      msgIds.push(...r.body.messages.map((x: any) => x.id));
      cur = r.body.nextCursor;
    } while (cur && ++n < 20);
    if (msgIds.length !== 10 || new Set(msgIds).size !== 10) bad.push({ label: 'message pagination', n: msgIds.length, u: new Set(msgIds).size });
    chk('conv limit 500', await http.get(`/v1/conversations/${c.id}?limit=500`, a.token), 400);
    chk('conv cursor junk', await http.get(`/v1/conversations/${c.id}?cursor=abc`, a.token), 400);
    // conversations pagination
    for (let i = 0; i < 9; i++) await http.post('/v1/conversations', { workspace: 'private', title: `T${i}` }, a.token);
    const convIds = await pageAll('conv page', '/v1/conversations?workspace=private', a.token, 4);
    if (convIds.length !== 11 || new Set(convIds).size !== 11) bad.push({ label: 'conv pagination', n: convIds.length, u: new Set(convIds).size });
    // modify conversation order while paging: post message to an old conv between pages
    const p1 = await http.get('/v1/conversations?workspace=private&limit=4', a.token);
    log.push({ convPage1: p1.body });
    chk('conv list shape', p1, 200, (bd) => keys(bd.data[0], ['id', 'workspace', 'title']));
    chk('conv del other', await http.delete(`/v1/conversations/${c.id}`, b.token), 404);
    chk('conv del malformed', await http.delete('/v1/conversations/1', a.token), 400);
    chk('conv del', await http.delete(`/v1/conversations/${c.id}`, a.token), 204);
    chk('conv del again', await http.delete(`/v1/conversations/${c.id}`, a.token), 404);
    chk('conv get deleted', await http.get(`/v1/conversations/${c.id}`, a.token), 404);
    // assistants
    const as = chk('asst create', await http.post('/v1/assistants', { workspace: 'private', name: 'Helfer', instructions: 'Sei nett.' }, a.token), 201, (bd) => keys(bd, ['id', 'workspace', 'name', 'instructions']));
    log.push({ assistant: as.body });
    chk('asst create empty', await http.post('/v1/assistants', {}, a.token), 400);
    chk('asst create model bad', await http.post('/v1/assistants', { workspace: 'private', name: 'H2', instructions: 'x', model: 'nope' }, a.token), [400, 404, 422]);
    chk('asst create stranger ws', await http.post('/v1/assistants', { workspace: org.id, name: 'H3', instructions: 'x' }, b.token), [403, 404]);
    chk('asst list no ws', await http.get('/v1/assistants', a.token), 400);
    chk('asst list stranger', await http.get(`/v1/assistants?workspace=${org.id}`, b.token), [403, 404]);
    for (let i = 0; i < 6; i++) await http.post('/v1/assistants', { workspace: 'private', name: `A${i}`, instructions: 'x' }, a.token);
    const aIds = await pageAll('asst page', '/v1/assistants?workspace=private', a.token, 3);
    if (aIds.length !== 7 || new Set(aIds).size !== 7) bad.push({ label: 'asst pagination', n: aIds.length });
    chk('b sees a asst', await http.get('/v1/assistants?workspace=private', b.token), 200, (bd) => (bd.data.length === 0 ? undefined : 'leak'));
    chk('conv with other asst', await http.post('/v1/conversations', { workspace: 'private', assistantId: as.body.id }, b.token), [400, 404]);
    chk('conv with asst', await http.post('/v1/conversations', { workspace: 'private', assistantId: as.body.id }, a.token), 201);
    // completions
    const key = (await http.post('/v1/me/api-keys', { name: 'c', workspace: 'private' }, a.token)).body.key;
    chk('compl', await http.post('/v1/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }, key), 200, (bd) => keys(bd, ['id', 'object', 'choices', 'usage']));
    chk('compl empty', await http.post('/v1/chat/completions', {}, key), 400);
    chk('compl no msgs', await http.post('/v1/chat/completions', { model: 'gpt-4o-mini', messages: [] }, key), 400);
    chk('compl bad model', await http.post('/v1/chat/completions', { model: 'nope', messages: [{ role: 'user', content: 'hi' }] }, key), [400, 404, 422]);
    chk('compl bad role', await http.post('/v1/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'wizard', content: 'hi' }] }, key), 400);
    chk('compl types', await http.post('/v1/chat/completions', { model: 5, messages: 'x' }, key), 400);
    chk('compl noauth', await http.post('/v1/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }), 401);
    chk('compl jwt', await http.post('/v1/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }, a.token), [200, 401, 403]);
    chk('compl content null', await http.post('/v1/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: null }] }, key), 400);
    chk('compl content parts', await http.post('/v1/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }] }, key), [200, 400]);
    chk('compl n=2', await http.post('/v1/chat/completions', { model: 'gpt-4o-mini', n: 2, messages: [{ role: 'user', content: 'hi' }] }, key), [200, 400]);
    chk('compl max_tokens str', await http.post('/v1/chat/completions', { model: 'gpt-4o-mini', max_tokens: 'x', messages: [{ role: 'user', content: 'hi' }] }, key), 400);
  }, 180_000);
});
