import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { billingService } from '@ally/billing';
import { BillingRpc } from '@ally/contracts';
import { startStripeEmulator, type StripeEmulator } from '@ally/emulators';
import { gatewayService } from '@ally/gateway';
import { identityService } from '@ally/identity';
import { RpcClient } from '@ally/messaging';
import { confirmEmail, createTestEnv, httpClient, lastEvent, waitFor, type TestEnv } from '@ally/testing';
import { billingEnv } from './service-env.js';

const PASSWORD = 'Tannenzapfen im Schnee';

/**
 * Ids are UUIDs, which a client may write in capitals; rows that keep an id
 * as text (workspaces, caps) and the events compare it as written. Each id
 * the API takes is one spelling, lower case, so a capitalised one names the
 * same rows.
 */
describe('ids written in capitals', () => {
  let env: TestEnv;
  let stripe: StripeEmulator;
  let http: ReturnType<typeof httpClient>;
  let rpc: RpcClient;

  beforeAll(async () => {
    env = await createTestEnv();
    stripe = await startStripeEmulator();
    await env.start(identityService);
    await env.start(billingService, billingEnv(stripe, { QUOTA_REFRESH_MS: '50' }));
    http = httpClient((await env.start(gatewayService, { AUTH_RATE_LIMIT_PER_MINUTE: '1000' })).url);
    rpc = new RpcClient(await env.nats(), env.prefix);
    await rpc.connect();
  });

  afterAll(async () => {
    await rpc?.close().catch(() => undefined);
    await env?.close();
    await stripe?.close();
  });

  let n = 0;
  const register = async (extra: Record<string, unknown> = {}) => {
    const email = `spelling.${++n}@example.eu`;
    const res = await http.post('/v1/auth/register', { email, password: PASSWORD, firstName: 'Nora', lastName: 'Vogel', ...extra });
    expect(res.status).toBe(201);
    await confirmEmail(env, res.body.user.id);
    return { ...(res.body as { user: { id: string; memberships: { orgId: string }[] }; accessToken: string }), email };
  };
  const invitationToken = async (orgId: string, email: string, ownerToken: string) => {
    const res = await http.post(`/v1/orgs/${orgId}/invitations`, { email, role: 'member' }, ownerToken);
    expect(res.status).toBe(201);
    return (await lastEvent<{ invitationId: string; token: string }>(env, 'identity.invitation.created', (e) => e.data.invitationId === res.body.id)).data.token;
  };
  const join = async (orgId: string, ownerToken: string) => {
    const member = await register();
    expect((await http.post('/v1/invitations/accept', { token: await invitationToken(orgId, member.email, ownerToken) }, member.accessToken)).status).toBe(200);
    return member;
  };

  it("a member removed through the organisation's id in capitals loses their key for it for good, and the event names the id as it is", async () => {
    const owner = await register({ organizationName: 'Grossbuchstaben GmbH' });
    const orgId = owner.user.memberships[0].orgId;
    const member = await join(orgId, owner.accessToken);
    const key = await http.post('/v1/me/api-keys', { name: 'Team', workspace: orgId }, member.accessToken);
    expect(key.status).toBe(201);
    expect((await http.get('/v1/me', key.body.key)).status).toBe(200);

    expect((await http.delete(`/v1/orgs/${orgId.toUpperCase()}/members/${member.user.id.toUpperCase()}`, owner.accessToken)).status).toBe(204);
    const removed = await lastEvent<{ orgId: string; userId: string }>(env, 'identity.member.removed', (e) => e.data.userId === member.user.id);
    expect(removed.data.orgId).toBe(orgId);
    expect(await env.sql(`SELECT revoked_at IS NOT NULL AS revoked FROM identity.api_keys WHERE id = $1`, [key.body.id])).toEqual([{ revoked: true }]);

    // Invited again: the key ended with the membership stays ended.
    expect((await http.post('/v1/invitations/accept', { token: await invitationToken(orgId, member.email, owner.accessToken) }, member.accessToken)).status).toBe(200);
    expect((await http.get('/v1/me', key.body.key)).status).toBe(401);
  });

  it("a policy changed through the id in capitals is announced under the organisation's id", async () => {
    const owner = await register({ organizationName: 'Politik GmbH' });
    const orgId = owner.user.memberships[0].orgId;
    expect((await http.patch(`/v1/orgs/${orgId.toUpperCase()}/policy`, { chatRetentionDays: 33 }, owner.accessToken)).status).toBe(200);
    const event = await lastEvent<{ orgId: string; chatRetentionDays: number }>(env, 'identity.organization.policy-changed', (e) => e.data.chatRetentionDays === 33);
    expect(event.data.orgId).toBe(orgId);
    expect((await http.get(`/v1/orgs/${orgId.toUpperCase()}`, owner.accessToken)).body.id).toBe(orgId);
  });

  it("a member's cap set with their id in capitals limits them, and goes when they leave", async () => {
    const owner = await register({ organizationName: 'Kappen GmbH' });
    const orgId = owner.user.memberships[0].orgId;
    const member = await join(orgId, owner.accessToken);
    const set = await http.request('PUT', '/v1/billing/caps', { body: { workspace: orgId, userId: member.user.id.toUpperCase(), monthlyTokens: 0 }, token: owner.accessToken });
    expect(set.status).toBe(200);
    expect(await env.sql(`SELECT user_id FROM billing.caps WHERE workspace = $1`, [orgId])).toEqual([{ user_id: member.user.id }]);
    await waitFor(async () => ((await rpc.call(BillingRpc.quotaCheck, { workspace: orgId, userId: member.user.id })).allowed === false ? true : undefined), 'the cap to apply');

    expect((await http.delete(`/v1/orgs/${orgId}/members/${member.user.id}`, owner.accessToken)).status).toBe(204);
    await waitFor(async () => ((await env.sql(`SELECT 1 FROM billing.caps WHERE workspace = $1`, [orgId])).length === 0 ? true : undefined), 'the cap to go with the member');
  });
});
