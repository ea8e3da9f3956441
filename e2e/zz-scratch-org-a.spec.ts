import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { confirmEmail, lastEvent, waitFor, type TestEnv } from '@ally/testing';
import { startPlatformWorld, type PlatformWorld } from './platform-world.js';

const PASSWORD = 'Sommerwiese am Fluss 2026';
const log = (...a: unknown[]) => process.stdout.write(a.map((x) => (typeof x === 'string' ? x : JSON.stringify(x))).join(' ') + '\n');

describe('scratch org a', () => {
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

  it('roles and rights', async () => {
    const owner = await register('owner');
    const admin = await register('admin');
    const member = await register('member');
    const stranger = await register('stranger');
    const org = (await http.post('/v1/orgs', { name: 'Rights GmbH' }, owner.token)).body;
    await join(org.id, owner.token, admin, 'admin');
    await join(org.id, owner.token, member, 'member');
    const r: Record<string, number> = {};
    r.adminRemovesOwner = (await http.delete(`/v1/orgs/${org.id}/members/${owner.id}`, admin.token)).status;
    r.memberRemovesAdmin = (await http.delete(`/v1/orgs/${org.id}/members/${admin.id}`, member.token)).status;
    r.memberInvites = (await http.post(`/v1/orgs/${org.id}/invitations`, { email: 'x@example.eu', role: 'member' }, member.token)).status;
    r.memberPolicy = (await http.patch(`/v1/orgs/${org.id}/policy`, { euOnly: false }, member.token)).status;
    r.memberPolicyModels = (await http.patch(`/v1/orgs/${org.id}/policy`, { allowedModels: ['mistral-small'] }, member.token)).status;
    r.memberCheckout = (await http.post('/v1/billing/checkout', { workspace: org.id, plan: 'team' }, member.token)).status;
    r.memberPortal = (await http.post('/v1/billing/portal', { workspace: org.id }, member.token)).status;
    r.memberCaps = (await http.request('PUT', '/v1/billing/caps', { body: { workspace: org.id, monthlyTokens: 5 }, token: member.token })).status;
    r.memberInvoices = (await http.get(`/v1/billing/invoices?workspace=${org.id}`, member.token)).status;
    r.memberUsage = (await http.get(`/v1/billing/usage?workspace=${org.id}`, member.token)).status;
    r.memberSub = (await http.get(`/v1/billing/subscription?workspace=${org.id}`, member.token)).status;
    r.memberAssistant = (await http.post('/v1/assistants', { workspace: org.id, name: 'X', instructions: 'y' }, member.token)).status;
    r.adminAssistant = (await http.post('/v1/assistants', { workspace: org.id, name: 'X', instructions: 'y' }, admin.token)).status;
    r.adminCheckout = (await http.post('/v1/billing/checkout', { workspace: org.id, plan: 'team' }, admin.token)).status;
    r.adminCaps = (await http.request('PUT', '/v1/billing/caps', { body: { workspace: org.id, userId: member.id, monthlyTokens: 5 }, token: admin.token })).status;
    r.adminCapsStranger = (await http.request('PUT', '/v1/billing/caps', { body: { workspace: org.id, userId: stranger.id, monthlyTokens: 5 }, token: admin.token })).status;
    r.adminCapsOwner = (await http.request('PUT', '/v1/billing/caps', { body: { workspace: org.id, userId: owner.id, monthlyTokens: 0 }, token: admin.token })).status;
    r.adminInvitesAdmin = (await http.post(`/v1/orgs/${org.id}/invitations`, { email: 'y@example.eu', role: 'admin' }, admin.token)).status;
    r.adminInvitesOwner = (await http.post(`/v1/orgs/${org.id}/invitations`, { email: 'y@example.eu', role: 'owner' }, admin.token)).status;
    r.ownerLeavesAlone = (await http.delete(`/v1/orgs/${org.id}/members/${owner.id}`, owner.token)).status;
    for (const [k, p] of Object.entries({
      get: `/v1/orgs/${org.id}`,
      members: `/v1/orgs/${org.id}/members`,
      usage: `/v1/billing/usage?workspace=${org.id}`,
      sub: `/v1/billing/subscription?workspace=${org.id}`,
      inv: `/v1/billing/invoices?workspace=${org.id}`,
      assist: `/v1/assistants?workspace=${org.id}`,
      convs: `/v1/conversations?workspace=${org.id}`,
      models: `/v1/models?workspace=${org.id}`,
    })) r['stranger_' + k] = (await http.get(p, stranger.token)).status;
    r.strangerRemove = (await http.delete(`/v1/orgs/${org.id}/members/${member.id}`, stranger.token)).status;
    r.strangerPolicy = (await http.patch(`/v1/orgs/${org.id}/policy`, { allowedModels: ['nope'] }, stranger.token)).status;
    r.strangerCheckout = (await http.post('/v1/billing/checkout', { workspace: org.id, plan: 'team' }, stranger.token)).status;
    r.strangerConv = (await http.post('/v1/conversations', { workspace: org.id }, stranger.token)).status;
    r.strangerKey = (await http.post('/v1/me/api-keys', { name: 'k', workspace: org.id }, stranger.token)).status;
    log('RIGHTS', r);
    const members = await http.get(`/v1/orgs/${org.id}/members`, owner.token);
    log('MEMBERS', members.body.data.map((m: any) => m.role));
  });

  it('invitation tokens', async () => {
    const owner = await register('owner2');
    const org = (await http.post('/v1/orgs', { name: 'Tokens GmbH' }, owner.token)).body;
    const alice = await register('alice');
    const eve = await register('eve');
    const unverified = await register('unver', false);
    const r: Record<string, unknown> = {};
    const inv = await invite(org.id, owner.token, alice.email, 'admin');
    r.eveAccepts = (await http.post('/v1/invitations/accept', { token: inv.token }, eve.token)).status;
    const a1 = await http.post('/v1/invitations/accept', { token: inv.token }, alice.token);
    r.aliceAccepts = [a1.status, a1.body];
    r.aliceAgain = (await http.post('/v1/invitations/accept', { token: inv.token }, alice.token)).status;
    // invite with uppercase email
    const inv2 = await invite(org.id, owner.token, eve.email.toUpperCase(), 'member');
    r.eveUpper = (await http.post('/v1/invitations/accept', { token: inv2.token }, eve.token)).status;
    // unverified inviter
    const org2 = (await http.post('/v1/orgs', { name: 'Unverified GmbH' }, unverified.token)).body;
    r.unverifiedInvites = (await http.post(`/v1/orgs/${org2.id}/invitations`, { email: 'z@example.eu', role: 'member' }, unverified.token)).status;
    // invite existing member again
    r.inviteMemberAgain = (await http.post(`/v1/orgs/${org.id}/invitations`, { email: alice.email, role: 'member' }, owner.token)).status;
    // resend: two invitations; first should stop working
    const bob = await register('bob');
    const i1 = await invite(org.id, owner.token, bob.email, 'admin');
    const i2 = await invite(org.id, owner.token, bob.email, 'member');
    r.bobOld = (await http.post('/v1/invitations/accept', { token: i1.token }, bob.token)).status;
    r.bobNew = (await http.post('/v1/invitations/accept', { token: i2.token }, bob.token)).body;
    // admin alice invites carol, then alice removed, carol accepts
    const carol = await register('carol');
    const ic = await invite(org.id, alice.token, carol.email, 'admin');
    r.aliceInvites = ic.res.status;
    r.removeAlice = (await http.delete(`/v1/orgs/${org.id}/members/${alice.id}`, owner.token)).status;
    r.carolAccepts = (await http.post('/v1/invitations/accept', { token: ic.token }, carol.token)).status;
    // alice re-invited as member; accept; role should be member
    const ia = await invite(org.id, owner.token, alice.email, 'member');
    r.aliceBack = (await http.post('/v1/invitations/accept', { token: ia.token }, alice.token)).body;
    r.aliceRemovesBob = (await http.delete(`/v1/orgs/${org.id}/members/${bob.id}`, alice.token)).status;
    // bad tokens
    for (const t of ['', 'x', 'a'.repeat(5000), 123, null]) r['bad_' + String(t).slice(0, 5)] = (await http.post('/v1/invitations/accept', { token: t }, eve.token)).status;
    r.noBody = (await http.post('/v1/invitations/accept', undefined, eve.token)).status;
    log('TOKENS', r);
  });

  it('bad input', async () => {
    const owner = await register('owner3');
    const org = (await http.post('/v1/orgs', { name: 'Input GmbH' }, owner.token)).body;
    const r: Record<string, unknown> = {};
    const probes: [string, string, unknown][] = [
      ['PATCH', `/v1/orgs/${org.id}/policy`, {}],
      ['PATCH', `/v1/orgs/${org.id}/policy`, { chatRetentionDays: 0 }],
      ['PATCH', `/v1/orgs/${org.id}/policy`, { chatRetentionDays: 1.5 }],
      ['PATCH', `/v1/orgs/${org.id}/policy`, { chatRetentionDays: '30' }],
      ['PATCH', `/v1/orgs/${org.id}/policy`, { allowedModels: ['nope'] }],
      ['PATCH', `/v1/orgs/${org.id}/policy`, { allowedModels: [] }],
      ['PATCH', `/v1/orgs/${org.id}/policy`, { allowedModels: null }],
      ['PATCH', `/v1/orgs/${org.id}/policy`, { allowedModels: ['x'.repeat(10000)] }],
      ['PATCH', `/v1/orgs/${org.id}/policy`, { allowedModels: 'mistral-small' }],
      ['PATCH', `/v1/orgs/${org.id}/policy`, { blockedTerms: ['a'] }],
      ['PATCH', `/v1/orgs/${org.id}/policy`, { blockedTerms: ['\u0000ab'] }],
      ['PATCH', `/v1/orgs/${org.id}/policy`, { blockedTerms: ['ab', 'AB', 'ab'] }],
      ['PATCH', `/v1/orgs/${org.id}/policy`, { euOnly: 'yes' }],
      ['PATCH', `/v1/orgs/${org.id}/policy`, [1, 2]],
      ['PATCH', `/v1/orgs/${org.id}/policy`, null],
      ['PATCH', `/v1/orgs/00000000-0000-0000-0000-000000000000/policy`, { euOnly: true }],
      ['PATCH', `/v1/orgs/00000000-0000-0000-0000-000000000000/policy`, { allowedModels: ['mistral-small'] }],
      ['PATCH', `/v1/orgs/not-a-uuid/policy`, { euOnly: true }],
      ['POST', `/v1/orgs/${org.id}/invitations`, { email: 'a@b', role: 'member' }],
      ['POST', `/v1/orgs/${org.id}/invitations`, { email: 'a@example.eu' }],
      ['POST', `/v1/orgs/${org.id}/invitations`, { email: 'a@example.eu', role: 'member', extra: 1 }],
      ['POST', `/v1/orgs/${org.id}/invitations`, { email: ['a@example.eu'], role: 'member' }],
      ['POST', `/v1/orgs/${org.id}/invitations`, { email: `${'a'.repeat(300)}@example.eu`, role: 'member' }],
      ['POST', `/v1/orgs/${org.id}/invitations`, { email: 'A@EXAMPLE.EU', role: 'member' }],
      ['POST', `/v1/orgs/${org.id}/invitations`, { email: 'ümlaut@exämple.eu', role: 'member' }],
      ['POST', `/v1/orgs/${org.id}/invitations`, { email: owner.email.toUpperCase(), role: 'member' }],
      ['POST', `/v1/orgs/not-a-uuid/invitations`, { email: 'a@example.eu', role: 'member' }],
      ['DELETE', `/v1/orgs/${org.id}/members/not-a-uuid`, undefined],
      ['DELETE', `/v1/orgs/${org.id}/members/00000000-0000-0000-0000-000000000000`, undefined],
      ['GET', `/v1/orgs/${org.id}/members?limit=0`, undefined],
      ['GET', `/v1/orgs/${org.id}/members?limit=abc`, undefined],
      ['GET', `/v1/orgs/${org.id}/members?limit=100000`, undefined],
      ['GET', `/v1/orgs/${org.id}/members?cursor=zzz`, undefined],
      ['GET', `/v1/orgs/${org.id}/members?cursor=${Buffer.from('{"at":"x","id":"y"}').toString('base64url')}`, undefined],
      ['GET', `/v1/orgs/${org.id}/members?cursor=${Buffer.from(JSON.stringify(['2024-01-01T00:00:00Z', 'not-uuid'])).toString('base64url')}`, undefined],
      ['GET', `/v1/orgs/${org.id}/members?foo=1`, undefined],
      ['GET', `/v1/orgs/00000000-0000-0000-0000-000000000000`, undefined],
      ['POST', `/v1/orgs`, { name: '' }],
      ['POST', `/v1/orgs`, { name: 'x'.repeat(5000) }],
      ['POST', `/v1/orgs`, { name: 'https://evil.example.com' }],
      ['POST', `/v1/orgs`, {}],
      ['PUT', `/v1/billing/caps`, { workspace: org.id, monthlyTokens: -1 }],
      ['PUT', `/v1/billing/caps`, { workspace: org.id, userId: 'x', monthlyTokens: 1 }],
      ['PUT', `/v1/billing/caps`, { workspace: 'not-a-uuid', monthlyTokens: 1 }],
      ['PUT', `/v1/billing/caps`, { workspace: '00000000-0000-0000-0000-000000000000', monthlyTokens: 1 }],
      ['POST', `/v1/billing/checkout`, { workspace: org.id, plan: 'nope' }],
      ['POST', `/v1/billing/portal`, { workspace: org.id }],
      ['GET', `/v1/billing/usage?workspace=${org.id}&period=1999-01`, undefined],
      ['GET', `/v1/billing/invoices?workspace=${org.id}&cursor=abc`, undefined],
    ];
    for (const [m, p, b] of probes) {
      const res = await http.request(m, p, { body: b, token: owner.token });
      r[`${m} ${p.replace(org.id, 'ORG')} ${JSON.stringify(b)?.slice(0, 80)}`] = `${res.status} ${res.status >= 300 ? (res.body?.detail ?? res.body?.title ?? '').slice(0, 120) : ''}`;
    }
    log('BADINPUT', JSON.stringify(r, null, 1));
  });
});
