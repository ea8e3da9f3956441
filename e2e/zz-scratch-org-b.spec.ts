import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { confirmEmail, lastEvent, type TestEnv } from '@ally/testing';
import { startPlatformWorld, type PlatformWorld } from './platform-world.js';

const PASSWORD = 'Sommerwiese am Fluss 2026';
const log = (...a: unknown[]) => process.stdout.write(a.map((x) => (typeof x === 'string' ? x : JSON.stringify(x))).join(' ') + '\n');

describe('scratch org b', () => {
  let world: PlatformWorld;
  let env: TestEnv;
  let http: PlatformWorld['http'];
  let n = 0;

  const register = async (name: string, verify = true) => {
    const email = `${name}.${++n}.${Date.now()}@example.eu`;
    const res = await http.post('/v1/auth/register', { email, password: PASSWORD, firstName: 'Jana', lastName: 'Novák', locale: 'en' });
    expect(res.status).toBe(201);
    if (verify) await confirmEmail(env, res.body.user.id);
    return { email, id: res.body.user.id as string, token: res.body.accessToken as string };
  };
  const invite = async (orgId: string, by: string, email: string, role: string) => {
    const res = await http.post(`/v1/orgs/${orgId}/invitations`, { email, role }, by);
    if (res.status !== 201) return { res, token: undefined as unknown as string };
    const ev = await lastEvent<{ invitationId: string; token: string }>(env, 'identity.invitation.created', (e) => e.data.invitationId === res.body.id);
    return { res, token: ev.data.token };
  };
  const join = async (orgId: string, by: string, user: { email: string; token: string }, role: string) => {
    const { token } = await invite(orgId, by, user.email, role);
    const acc = await http.post('/v1/invitations/accept', { token }, user.token);
    expect(acc.status).toBe(200);
  };

  beforeAll(async () => {
    world = await startPlatformWorld({ gateway: true, privacy: false });
    ({ env, http } = world);
  }, 120_000);
  afterAll(async () => {
    await world?.close();
  });

  it('a removed member keeps nothing', async () => {
    const owner = await register('owner');
    const m = await register('member');
    const org = (await http.post('/v1/orgs', { name: 'Removal GmbH' }, owner.token)).body;
    await join(org.id, owner.token, m, 'admin');
    const conv = (await http.post('/v1/conversations', { workspace: org.id, title: 'Geheim' }, m.token)).body;
    const msg = await http.post(`/v1/conversations/${conv.id}/messages`, { content: 'Hallo' }, m.token);
    log('msg', msg.status);
    const key = (await http.post('/v1/me/api-keys', { name: 'k', workspace: org.id }, m.token)).body.key;
    const viaKey = await http.post('/v1/chat/completions', { model: 'mistral-small', messages: [{ role: 'user', content: 'hi' }] }, key);
    log('key before', viaKey.status);
    const asst = await http.post('/v1/assistants', { workspace: org.id, name: 'A', instructions: 'x' }, m.token);
    log('asst before', asst.status);
    const rm = await http.delete(`/v1/orgs/${org.id}/members/${m.id}`, owner.token);
    log('remove', rm.status);
    const r: Record<string, number> = {};
    r.getOrg = (await http.get(`/v1/orgs/${org.id}`, m.token)).status;
    r.members = (await http.get(`/v1/orgs/${org.id}/members`, m.token)).status;
    r.convList = (await http.get(`/v1/conversations?workspace=${org.id}`, m.token)).status;
    r.convGet = (await http.get(`/v1/conversations/${conv.id}`, m.token)).status;
    r.convPost = (await http.post(`/v1/conversations/${conv.id}/messages`, { content: 'noch da?' }, m.token)).status;
    r.convNew = (await http.post('/v1/conversations', { workspace: org.id }, m.token)).status;
    r.convDelete = (await http.delete(`/v1/conversations/${conv.id}`, m.token)).status;
    r.models = (await http.get(`/v1/models?workspace=${org.id}`, m.token)).status;
    r.assistList = (await http.get(`/v1/assistants?workspace=${org.id}`, m.token)).status;
    r.assistNew = (await http.post('/v1/assistants', { workspace: org.id, name: 'B', instructions: 'x' }, m.token)).status;
    r.keyCompletion = (await http.post('/v1/chat/completions', { model: 'mistral-small', messages: [{ role: 'user', content: 'hi' }] }, key)).status;
    r.keyModels = (await http.get('/v1/models', key)).status;
    r.newKey = (await http.post('/v1/me/api-keys', { name: 'k2', workspace: org.id }, m.token)).status;
    r.usage = (await http.get(`/v1/billing/usage?workspace=${org.id}`, m.token)).status;
    r.sub = (await http.get(`/v1/billing/subscription?workspace=${org.id}`, m.token)).status;
    r.invoices = (await http.get(`/v1/billing/invoices?workspace=${org.id}`, m.token)).status;
    r.checkout = (await http.post('/v1/billing/checkout', { workspace: org.id, plan: 'team' }, m.token)).status;
    r.caps = (await http.request('PUT', '/v1/billing/caps', { body: { workspace: org.id, monthlyTokens: 1 }, token: m.token })).status;
    r.policy = (await http.patch(`/v1/orgs/${org.id}/policy`, { euOnly: false }, m.token)).status;
    r.invite = (await http.post(`/v1/orgs/${org.id}/invitations`, { email: 'q@example.eu', role: 'admin' }, m.token)).status;
    r.removeOwner = (await http.delete(`/v1/orgs/${org.id}/members/${owner.id}`, m.token)).status;
    const me = await http.get('/v1/me', m.token);
    log('REMOVED', r, me.body.memberships);
    const keys = await http.get('/v1/me/api-keys', m.token);
    log('keys list', keys.body);
    // re-invited as a member
    await join(org.id, owner.token, m, 'member');
    const r2: Record<string, number> = {};
    r2.oldKey = (await http.post('/v1/chat/completions', { model: 'mistral-small', messages: [{ role: 'user', content: 'hi' }] }, key)).status;
    r2.assistNew = (await http.post('/v1/assistants', { workspace: org.id, name: 'C', instructions: 'x' }, m.token)).status;
    r2.checkout = (await http.post('/v1/billing/checkout', { workspace: org.id, plan: 'team' }, m.token)).status;
    r2.convGet = (await http.get(`/v1/conversations/${conv.id}`, m.token)).status;
    log('REJOINED AS MEMBER', r2);
    const rows = await env.sql(`SELECT role, updated_at FROM chat.memberships WHERE org_id = $1 AND user_id = $2`, [org.id, m.id]);
    log('chat replica', rows);
  });

  it('concurrent admins remove each other', async () => {
    const results: string[] = [];
    for (let i = 0; i < 5; i++) {
      const owner = await register('o');
      const a = await register('a');
      const b = await register('b');
      const org = (await http.post('/v1/orgs', { name: `Race ${i} GmbH` }, owner.token)).body;
      await join(org.id, owner.token, a, 'admin');
      await join(org.id, owner.token, b, 'admin');
      const [x, y] = await Promise.all([http.delete(`/v1/orgs/${org.id}/members/${b.id}`, a.token), http.delete(`/v1/orgs/${org.id}/members/${a.id}`, b.token)]);
      const members = await http.get(`/v1/orgs/${org.id}/members`, owner.token);
      results.push(`${x.status}/${y.status} -> ${members.body.data.length}`);
    }
    log('MUTUAL', results);
  });

  it('api key created while being removed', async () => {
    const results: string[] = [];
    for (let i = 0; i < 6; i++) {
      const owner = await register('o');
      const a = await register('a');
      const org = (await http.post('/v1/orgs', { name: `Key ${i} GmbH` }, owner.token)).body;
      await join(org.id, owner.token, a, 'member');
      const [k, rm] = await Promise.all([http.post('/v1/me/api-keys', { name: 'k', workspace: org.id }, a.token), http.delete(`/v1/orgs/${org.id}/members/${a.id}`, owner.token)]);
      let use = -1;
      if (k.status === 201) use = (await http.post('/v1/chat/completions', { model: 'mistral-small', messages: [{ role: 'user', content: 'hi' }] }, k.body.key)).status;
      // re-invite and try the key again
      await join(org.id, owner.token, a, 'member');
      let use2 = -1;
      if (k.status === 201) use2 = (await http.post('/v1/chat/completions', { model: 'mistral-small', messages: [{ role: 'user', content: 'hi' }] }, k.body.key)).status;
      results.push(`key ${k.status} rm ${rm.status} use ${use} after-rejoin ${use2}`);
    }
    log('KEYRACE', results);
  });

  it('chat requests during removal', async () => {
    const results: string[] = [];
    for (let i = 0; i < 4; i++) {
      const owner = await register('o');
      const a = await register('a');
      const org = (await http.post('/v1/orgs', { name: `Chat ${i} GmbH` }, owner.token)).body;
      await join(org.id, owner.token, a, 'admin');
      const conv = (await http.post('/v1/conversations', { workspace: org.id }, a.token)).body;
      let removedAt = 0;
      const rmP = http.delete(`/v1/orgs/${org.id}/members/${a.id}`, owner.token).then((r) => {
        removedAt = Date.now();
        return r;
      });
      const late: string[] = [];
      const spam = async () => {
        for (let j = 0; j < 40; j++) {
          const start = Date.now();
          const res = await Promise.all([
            http.get(`/v1/conversations/${conv.id}`, a.token),
            http.post('/v1/assistants', { workspace: org.id, name: 'Z', instructions: 'x' }, a.token),
            http.post('/v1/conversations', { workspace: org.id }, a.token),
          ]);
          if (removedAt && start > removedAt) res.forEach((x, idx) => x.status < 300 && late.push(`${j}:${idx}:${x.status}`));
        }
      };
      const [rm] = await Promise.all([rmP, spam()]);
      results.push(`rm ${rm.status} late-successes ${late.join(',')}`);
    }
    log('CHATRACE', results);
  });
});
