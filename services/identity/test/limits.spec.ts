import { describe, expect, it } from '@jest/globals';
import { IdentityRpc, type Actor } from '@ally/contracts';
import { confirmEmail, lastEvent } from '@ally/testing';
import { identityWorld } from './identity-world.js';

const PASSWORD = 'Lindenblüten am Kanal';
let counter = 0;
const limitReached = (detail: RegExp) => ({ status: 409, extra: { type: 'https://ally.eu/problems/limit-reached' }, message: expect.stringMatching(detail) });

/** What one account may pile up (organisations, API keys, invitations a day), and what one network may guess. Far above real use; here set low. */
describe('identity: limits of one account and one network', () => {
  const world = identityWorld({ MAX_ORGS_PER_USER: '2', MAX_API_KEYS_PER_USER: '2', MAX_INVITATIONS_PER_DAY: '3', LOGIN_MAX_FAILURES_PER_IP: '3' });

  const register = async (): Promise<Actor & { email: string }> => {
    const email = `limits${++counter}@example.eu`;
    const reply = await world.rpc.call(IdentityRpc.register, { email, password: PASSWORD, firstName: 'Lena', lastName: 'Hoffmann' });
    await confirmEmail(world.env, reply.user.id);
    return { userId: reply.user.id, platformRoles: [], email };
  };
  /** The invitation's token, as notify gets it from the stream (identity keeps only its hash). */
  const tokenOf = async (invitationId: string) =>
    (await lastEvent<{ invitationId: string; token: string }>(world.env, 'identity.invitation.created', (e) => e.data.invitationId === invitationId)).data.token;
  const inviteAndToken = async (inviter: Actor, orgId: string, email: string) =>
    tokenOf((await world.rpc.call(IdentityRpc.createInvitation, { orgId, email, role: 'member' }, { actor: inviter })).id);

  it('lets an account belong to MAX_ORGS_PER_USER organisations, created or joined, and frees a place when it leaves one', async () => {
    const user = await register();
    const inviter = await register();
    const joined = await world.rpc.call(IdentityRpc.createOrg, { name: 'Gastgeber GmbH' }, { actor: inviter });
    await world.rpc.call(IdentityRpc.acceptInvitation, { token: await inviteAndToken(inviter, joined.id, user.email) }, { actor: user });
    await world.rpc.call(IdentityRpc.createOrg, { name: 'Eigene GmbH' }, { actor: user });
    await expect(world.rpc.call(IdentityRpc.createOrg, { name: 'Dritte GmbH' }, { actor: user })).rejects.toMatchObject(limitReached(/belong to 2 organisations/));

    // Joining counts as belonging: the invitation is refused, and stays open for later.
    const other = await world.rpc.call(IdentityRpc.createOrg, { name: 'Andere AG' }, { actor: inviter });
    const token = await inviteAndToken(inviter, other.id, user.email);
    await expect(world.rpc.call(IdentityRpc.acceptInvitation, { token }, { actor: user })).rejects.toMatchObject(limitReached(/belong to 2 organisations/));
    expect(await world.env.sql(`SELECT org_id FROM identity.memberships WHERE user_id = $1 AND org_id = $2`, [user.userId, other.id])).toEqual([]);

    // Leaving one makes room.
    await world.rpc.call(IdentityRpc.removeMember, { orgId: joined.id, userId: user.userId }, { actor: user });
    await expect(world.rpc.call(IdentityRpc.acceptInvitation, { token }, { actor: user })).resolves.toMatchObject({ orgId: other.id, role: 'member' });
  });

  it('holds MAX_API_KEYS_PER_USER unrevoked keys; a revoked one makes room, and keys asked for at once do not slip past', async () => {
    const user = await register();
    const asked = await Promise.allSettled([1, 2, 3, 4].map((i) => world.rpc.call(IdentityRpc.createApiKey, { name: `Key ${i}`, workspace: 'private' }, { actor: user })));
    expect(asked.filter((r) => r.status === 'fulfilled')).toHaveLength(2);
    for (const r of asked) if (r.status === 'rejected') expect(r.reason).toMatchObject(limitReached(/have 2 API keys.*revoke one/));
    const [kept] = asked.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    await world.rpc.call(IdentityRpc.revokeApiKey, { id: kept.id }, { actor: user });
    await expect(world.rpc.call(IdentityRpc.createApiKey, { name: 'Again', workspace: 'private' }, { actor: user })).resolves.toMatchObject({ name: 'Again' });
  });

  it('sends MAX_INVITATIONS_PER_DAY invitations a day per person, over all their organisations; a day later there is room again', async () => {
    const owner = await register();
    const a = await world.rpc.call(IdentityRpc.createOrg, { name: 'Einladung A' }, { actor: owner });
    const b = await world.rpc.call(IdentityRpc.createOrg, { name: 'Einladung B' }, { actor: owner });
    const invite = (orgId: string, n: number) => world.rpc.call(IdentityRpc.createInvitation, { orgId, email: `guest${counter}-${n}@example.eu`, role: 'member' }, { actor: owner });
    await invite(a.id, 1);
    await invite(b.id, 2);
    await invite(a.id, 3);
    await expect(invite(b.id, 4)).rejects.toMatchObject(limitReached(/sent 3 invitations in the last 24 hours/));
    // Taking one back (or a newer one to the same address) does not give its mail back.
    const [sent] = (await world.rpc.call(IdentityRpc.listInvitations, { orgId: a.id, limit: 1 }, { actor: owner })).data;
    await world.rpc.call(IdentityRpc.revokeInvitation, { orgId: a.id, invitationId: sent.id }, { actor: owner });
    await expect(invite(b.id, 4)).rejects.toMatchObject(limitReached(/sent 3 invitations/));
    await world.env.sql(`UPDATE identity.invitations_sent SET sent_at = now() - interval '25 hours' WHERE user_id = $1`, [owner.userId]);
    await expect(invite(b.id, 4)).resolves.toMatchObject({ orgId: b.id });
  });

  it("counts failed sign-ins against an IPv6 address's /64: a fresh address in the same network buys no fresh guesses", async () => {
    const guess = async (ip: string) => {
      const { email } = await register();
      return world.rpc.call(IdentityRpc.login, { email, password: 'not the password at all' }, { meta: { ip } }).catch((err: { status: number }) => err.status);
    };
    for (const ip of ['2001:db8:77:1::1', '2001:db8:77:1:a::b', '2001:db8:77:1:ffff:ffff:ffff:fffe']) expect(await guess(ip)).toBe(401);
    expect(await guess('2001:0db8:0077:0001:1234:5678:9abc:def0')).toBe(429);
    // Another /64 (another subscriber) still has its own count.
    expect(await guess('2001:db8:77:2::1')).toBe(401);
    const [row] = await world.env.sql<{ ip: string; network: string }>(`SELECT ip, network FROM identity.login_audit WHERE ip = '2001:db8:77:2::1'`);
    expect(row).toEqual({ ip: '2001:db8:77:2::1', network: '2001:db8:77:2::/64' });
  });
});
