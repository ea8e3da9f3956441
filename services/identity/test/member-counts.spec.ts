import { describe, expect, it } from '@jest/globals';
import { IdentityRpc } from '@ally/contracts';
import { confirmEmail, lastEvent } from '@ally/testing';
import { identityWorld } from './identity-world.js';

const PASSWORD = 'Sommerwiese am Fluss 2026';

/**
 * billing sets an organisation's seats from the newest membership event's
 * `memberCount`: each event counts the members as its own change left them.
 */
describe('member counts in membership events', () => {
  const world = identityWorld();
  let n = 0;
  const register = async (extra: Record<string, unknown> = {}) => {
    const email = `seat-${++n}@example.eu`;
    const { user } = await world.rpc.call(IdentityRpc.register, { email, password: PASSWORD, firstName: 'Jana', lastName: 'Novák', ...extra });
    return { actor: { userId: user.id, platformRoles: [] as [] }, email, orgId: user.memberships[0]?.orgId };
  };
  const memberEvents = async (orgId: string) =>
    (
      await world.env.sql<{ payload: { occurredAt: string; data: { memberCount: number; countedAt: string } } }>(
        `SELECT payload FROM identity.outbox WHERE type IN ('identity.member.added', 'identity.member.removed') AND payload->'data'->>'orgId' = $1`,
        [orgId],
      )
    )
      .map((r) => r.payload)
      // In the order identity's database counted them (what billing keeps the newest of), not by a replica's clock.
      .sort((a, b) => a.data.countedAt.localeCompare(b.data.countedAt));

  it('invitees accepting and members leaving at the same moment: every count is the one its change left, the newest the real one', async () => {
    const owner = await register({ organizationName: 'Sitzplatz GmbH' });
    await confirmEmail(world.env, owner.actor.userId);
    const { orgId } = owner;
    const invite = async () => {
      const u = await register();
      const inv = await world.rpc.call(IdentityRpc.createInvitation, { orgId, email: u.email, role: 'member' }, { actor: owner.actor });
      return { u, token: (await lastEvent<{ invitationId: string; token: string }>(world.env, 'identity.invitation.created', (e) => e.data.invitationId === inv.id)).data.token };
    };
    const leaving = [];
    for (let i = 0; i < 4; i++) {
      const { u, token } = await invite();
      await world.rpc.call(IdentityRpc.acceptInvitation, { token }, { actor: u.actor });
      leaving.push(u);
    }
    const joining = [];
    for (let i = 0; i < 10; i++) joining.push(await invite());

    await Promise.all([
      ...joining.map(({ u, token }) => world.rpc.call(IdentityRpc.acceptInvitation, { token }, { actor: u.actor })),
      ...leaving.map((u) => world.rpc.call(IdentityRpc.removeMember, { orgId, userId: u.actor.userId }, { actor: u.actor })),
    ]);

    const [{ count }] = await world.env.sql<{ count: number }>(`SELECT count(*)::int AS count FROM identity.memberships WHERE org_id = $1`, [orgId]);
    expect(count).toBe(11);
    // The owner joining at registration, then the four who leave.
    const concurrent = (await memberEvents(orgId)).slice(5);
    expect(concurrent).toHaveLength(14);
    // Taking turns, each change moves the count by one from the change before.
    const counts = concurrent.map((e) => e.data.memberCount);
    counts.reduce((previous, c) => (expect(Math.abs(c - previous)).toBe(1), c), 5);
    expect(counts.at(-1)).toBe(11);
  });
});
