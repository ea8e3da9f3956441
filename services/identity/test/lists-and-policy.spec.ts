import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import { IdentityRpc, type Actor, type Page } from '@ally/contracts';
import { confirmEmail, lastEvent } from '@ally/testing';
import { identityWorld } from './identity-world.js';

const PASSWORD = 'Lindenblüten am Kanal';
let counter = 0;

describe('identity lists (API keys, members) and the organisation policy', () => {
  const world = identityWorld();

  const register = async (): Promise<Actor> => {
    const reply = await world.rpc.call(IdentityRpc.register, { email: `lists${++counter}@example.eu`, password: PASSWORD, firstName: 'Lena', lastName: 'Hoffmann' });
    // Confirmed, as an owner must be to invite.
    await confirmEmail(world.env, reply.user.id);
    return { userId: reply.user.id, platformRoles: [] };
  };

  /** Every page from the first, following nextCursor until it is null. */
  async function allPages<T>(page: (cursor?: string) => Promise<Page<T>>): Promise<{ pages: T[][]; items: T[] }> {
    const pages: T[][] = [];
    let cursor: string | undefined;
    do {
      const answer = await page(cursor);
      pages.push(answer.data);
      cursor = answer.nextCursor ?? undefined;
    } while (cursor && pages.length < 50);
    return { pages, items: pages.flat() };
  }

  it('answers the contacts of a workspace that is no workspace key with 400, not 500 (36 dashes passed a looser pattern)', async () => {
    for (const workspace of ['-'.repeat(36), `private:${'a'.repeat(36)}`, randomUUID().toUpperCase()]) {
      await expect(world.rpc.call(IdentityRpc.contacts, { workspace })).rejects.toMatchObject({ status: 400, extra: { errors: [{ field: 'workspace' }] } });
    }
    expect(await world.rpc.call(IdentityRpc.contacts, { workspace: `private:${randomUUID()}` })).toEqual({ contacts: [] });
  });

  it('answers a new API key with the creation time its list shows', async () => {
    const actor = await register();
    const created = await world.rpc.call(IdentityRpc.createApiKey, { name: 'Zeit', workspace: 'private' }, { actor });
    const listed = await world.rpc.call(IdentityRpc.listApiKeys, { limit: 1 }, { actor });
    expect(listed.data[0]).toMatchObject({ id: created.id, createdAt: created.createdAt });
  });

  it('pages API keys newest first, and keys made in the same millisecond are neither skipped nor repeated', async () => {
    const actor = await register();
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) ids.push((await world.rpc.call(IdentityRpc.createApiKey, { name: `Key ${i}`, workspace: 'private' }, { actor })).id);
    // Postgres keeps microseconds, a cursor milliseconds: three keys in one millisecond, in an order unlike their ids'.
    const micros = ['2026-03-01T10:00:00.123900Z', '2026-03-01T10:00:00.123100Z', '2026-03-01T10:00:00.123500Z'];
    for (const [i, at] of micros.entries()) await world.env.sql(`UPDATE identity.api_keys SET created_at = $2 WHERE id = $1`, [ids[i], at]);

    const { pages, items } = await allPages((cursor) => world.rpc.call(IdentityRpc.listApiKeys, { limit: 2, cursor }, { actor }));
    expect(pages.map((p) => p.length)).toEqual([2, 2, 2]);
    expect(new Set(items.map((k) => k.id))).toEqual(new Set(ids));
    const keyset = items.map((k) => [Date.parse(k.createdAt), k.id] as const);
    const sorted = [...keyset].sort(([a, x], [b, y]) => b - a || (y > x ? 1 : y < x ? -1 : 0));
    expect(keyset).toEqual(sorted);
    expect(items.slice(0, 3).map((k) => k.name)).toEqual(['Key 5', 'Key 4', 'Key 3']);

    const one = await world.rpc.call(IdentityRpc.listApiKeys, { limit: 1 }, { actor });
    expect(one.data).toHaveLength(1);
    expect(one.nextCursor).toEqual(expect.any(String));
  });

  it('records a rectification only for what changed (the same name again is none, and tells no processor)', async () => {
    const actor = await register();
    const updates = async () => (await world.env.sql(`SELECT payload->'data'->'changed' AS changed FROM identity.outbox WHERE type = 'identity.user.updated' AND strpos(payload::text, $1) > 0`, [actor.userId])).map((r) => r.changed);
    await world.rpc.call(IdentityRpc.updateMe, { firstName: 'Lena', lastName: 'Hoffmann' }, { actor });
    expect(await updates()).toEqual([]);
    await world.rpc.call(IdentityRpc.updateMe, { firstName: 'Lena', lastName: 'Berger' }, { actor });
    expect(await updates()).toEqual([['lastName']]);
  });

  it('answers an API key asked for by an account erased since (its token still lived) with 401, not a 500', async () => {
    const gone = { userId: randomUUID(), platformRoles: [] as [] };
    await expect(world.rpc.call(IdentityRpc.createApiKey, { name: 'Nachzügler', workspace: 'private' }, { actor: gone })).rejects.toMatchObject({ status: 401 });
  });

  it('answers 20 API keys when no limit is given, and leaves revoked keys out', async () => {
    const actor = await register();
    const ids: string[] = [];
    for (let i = 0; i < 22; i++) ids.push((await world.rpc.call(IdentityRpc.createApiKey, { name: `CI ${i}`, workspace: 'private' }, { actor })).id);
    await world.rpc.call(IdentityRpc.revokeApiKey, { id: ids[21] }, { actor });
    const first = await world.rpc.call(IdentityRpc.listApiKeys, {}, { actor });
    expect(first.data).toHaveLength(20);
    const rest = await world.rpc.call(IdentityRpc.listApiKeys, { cursor: first.nextCursor! }, { actor });
    expect(rest).toEqual({ data: [expect.objectContaining({ name: 'CI 0' })], nextCursor: null });
    expect([...first.data, ...rest.data].map((k) => k.id)).not.toContain(ids[21]);
  });

  it('refuses a bad limit and a cursor it did not give out with 400 naming them, and ignores a parameter it does not know', async () => {
    const actor = await register();
    for (const limit of [0, -1, 101, 'abc', 1.5]) {
      await expect(world.rpc.call(IdentityRpc.listApiKeys, { limit } as never, { actor })).rejects.toMatchObject({ status: 400, extra: { errors: [{ field: 'limit' }] } });
    }
    for (const cursor of ['junk', Buffer.from('2026-02-31T00:00:00.000Z|0b7c7b7e-7a53-4c1e-9d43-3f1f0d7f9c11').toString('base64url'), 'x'.repeat(201)]) {
      await expect(world.rpc.call(IdentityRpc.listApiKeys, { cursor }, { actor })).rejects.toMatchObject({ status: 400, extra: { errors: [{ field: 'cursor' }] } });
    }
    // A parameter identity does not know is one a caller of a later release may send: ignored here (the gateway
    // refuses unknown ones from clients, e2e/bad-input.spec.ts).
    await expect(world.rpc.call(IdentityRpc.listApiKeys, { foo: 'bar' } as never, { actor })).resolves.toEqual({ data: [], nextCursor: null });
  });

  it('pages members in order of joining, and refuses bad paging of members with 400', async () => {
    const owner = await register();
    const org = await world.rpc.call(IdentityRpc.createOrg, { name: 'Hoffmann & Partner' }, { actor: owner });
    const others = [await register(), await register(), await register(), await register()];
    for (const [i, m] of others.entries()) {
      // Two of them in the same millisecond as the owner, at other microseconds.
      const at = i < 2 ? `2026-03-01T10:00:00.123${i === 0 ? '700' : '200'}Z` : `2026-03-0${i}T10:00:00.000Z`;
      await world.env.sql(`INSERT INTO identity.memberships (org_id, user_id, role, created_at) VALUES ($1, $2, 'member', $3)`, [org.id, m.userId, at]);
    }
    await world.env.sql(`UPDATE identity.memberships SET created_at = '2026-03-01T10:00:00.123456Z' WHERE org_id = $1 AND user_id = $2`, [org.id, owner.userId]);

    const { pages, items } = await allPages((cursor) => world.rpc.call(IdentityRpc.listMembers, { orgId: org.id, limit: 2, cursor }, { actor: owner }));
    expect(pages.map((p) => p.length)).toEqual([2, 2, 1]);
    expect(new Set(items.map((m) => m.userId))).toEqual(new Set([owner.userId, ...others.map((o) => o.userId)]));
    expect(items.slice(3).map((m) => m.userId)).toEqual([others[2].userId, others[3].userId]);
    expect(items.find((m) => m.userId === owner.userId)).toMatchObject({ role: 'owner', joinedAt: '2026-03-01T10:00:00.123Z' });

    const all = await world.rpc.call(IdentityRpc.listMembers, { orgId: org.id }, { actor: others[0] });
    expect(all).toMatchObject({ nextCursor: null });
    expect(all.data).toHaveLength(5);

    await expect(world.rpc.call(IdentityRpc.listMembers, { orgId: org.id, limit: 0 }, { actor: owner })).rejects.toMatchObject({ status: 400, extra: { errors: [{ field: 'limit' }] } });
    await expect(world.rpc.call(IdentityRpc.listMembers, { orgId: org.id, cursor: 'junk' }, { actor: owner })).rejects.toMatchObject({ status: 400, extra: { errors: [{ field: 'cursor' }] } });
    const stranger = await register();
    await expect(world.rpc.call(IdentityRpc.listMembers, { orgId: org.id }, { actor: stranger })).rejects.toMatchObject({ status: 404 });
  });

  it('lets only the newest invitation to an address work: an earlier one for another role no longer does', async () => {
    const owner = await register();
    const org = await world.rpc.call(IdentityRpc.createOrg, { name: 'Einladung & Söhne' }, { actor: owner });
    const invitee = await register();
    const [{ email }] = await world.env.sql<{ email: string }>(`SELECT email FROM identity.users WHERE id = $1`, [invitee.userId]);
    const tokenOf = async (role: 'member' | 'admin') => {
      const invitation = await world.rpc.call(IdentityRpc.createInvitation, { orgId: org.id, email, role }, { actor: owner });
      return (await lastEvent<{ invitationId: string; token: string }>(world.env, 'identity.invitation.created', (e) => e.data.invitationId === invitation.id)).data.token;
    };
    const asMember = await tokenOf('member');
    const asAdmin = await tokenOf('admin');
    await expect(world.rpc.call(IdentityRpc.acceptInvitation, { token: asMember }, { actor: invitee })).rejects.toMatchObject({ status: 400, message: expect.stringContaining('replaced by a newer one') });
    expect(await world.rpc.call(IdentityRpc.acceptInvitation, { token: asAdmin }, { actor: invitee })).toMatchObject({ orgId: org.id, role: 'admin' });

    // Sent at the same moment, they take turns: one stays open, not both.
    const other = 'gleichzeitig@example.eu';
    await Promise.all((['member', 'admin'] as const).map((role) => world.rpc.call(IdentityRpc.createInvitation, { orgId: org.id, email: other, role }, { actor: owner })));
    expect(await world.env.sql(`SELECT count(*)::int AS n FROM identity.invitations WHERE org_id = $1 AND email = $2 AND accepted_at IS NULL`, [org.id, other])).toEqual([{ n: 1 }]);
  });

  it('revokes a removed member\'s keys for the organisation for good: inviting them again does not bring a key back', async () => {
    const owner = await register();
    const org = await world.rpc.call(IdentityRpc.createOrg, { name: 'Schlüsselbund KG' }, { actor: owner });
    const member = await register();
    const [{ email }] = await world.env.sql<{ email: string }>(`SELECT email FROM identity.users WHERE id = $1`, [member.userId]);
    const join = async () => {
      const invitation = await world.rpc.call(IdentityRpc.createInvitation, { orgId: org.id, email, role: 'member' }, { actor: owner });
      const { token } = (await lastEvent<{ invitationId: string; token: string }>(world.env, 'identity.invitation.created', (e) => e.data.invitationId === invitation.id)).data;
      await world.rpc.call(IdentityRpc.acceptInvitation, { token }, { actor: member });
    };
    await join();
    const orgKey = await world.rpc.call(IdentityRpc.createApiKey, { name: 'Firma', workspace: org.id }, { actor: member });
    const privateKey = await world.rpc.call(IdentityRpc.createApiKey, { name: 'Privat', workspace: 'private' }, { actor: member });
    await world.rpc.call(IdentityRpc.removeMember, { orgId: org.id, userId: member.userId }, { actor: owner });
    await join();
    await expect(world.rpc.call(IdentityRpc.verifyApiKey, { key: orgKey.key })).rejects.toMatchObject({ status: 401 });
    expect(await world.rpc.call(IdentityRpc.verifyApiKey, { key: privateKey.key })).toMatchObject({ userId: member.userId, workspace: 'private' });
    expect((await world.rpc.call(IdentityRpc.listApiKeys, {}, { actor: member })).data.map((k) => k.id)).toEqual([privateKey.id]);
  });

  it('ends the invitations to a removed member\'s address with their membership: one still open (sent as they accepted another) does not bring them back', async () => {
    const owner = await register();
    const org = await world.rpc.call(IdentityRpc.createOrg, { name: 'Zurück GmbH' }, { actor: owner });
    const member = await register();
    const [{ email }] = await world.env.sql<{ email: string }>(`SELECT email FROM identity.users WHERE id = $1`, [member.userId]);
    const invitation = await world.rpc.call(IdentityRpc.createInvitation, { orgId: org.id, email, role: 'member' }, { actor: owner });
    const { token } = (await lastEvent<{ invitationId: string; token: string }>(world.env, 'identity.invitation.created', (e) => e.data.invitationId === invitation.id)).data;
    await world.rpc.call(IdentityRpc.acceptInvitation, { token }, { actor: member });
    // A second invitation, as an admin's "send again" that met the acceptance: open while they are a member.
    const again = randomBytes(32).toString('base64url');
    await world.env.sql(
      `INSERT INTO identity.invitations (id, org_id, email, role, token_hash, invited_by, expires_at) VALUES ($1, $2, $3, 'admin', $4, $5, now() + interval '7 days')`,
      [randomUUID(), org.id, email, createHash('sha256').update(again).digest('base64url'), owner.userId],
    );
    await world.rpc.call(IdentityRpc.removeMember, { orgId: org.id, userId: member.userId }, { actor: owner });
    await expect(world.rpc.call(IdentityRpc.acceptInvitation, { token: again }, { actor: member })).rejects.toMatchObject({ status: 400 });
    expect(await world.env.sql(`SELECT 1 FROM identity.memberships WHERE org_id = $1 AND user_id = $2`, [org.id, member.userId])).toEqual([]);
  });

  it('clears allowed models and the chat retention with null, and publishes the cleared policy', async () => {
    const owner = await register();
    const org = await world.rpc.call(IdentityRpc.createOrg, { name: 'Kanzlei Brandt' }, { actor: owner });
    const set = await world.rpc.call(IdentityRpc.updateOrgPolicy, { orgId: org.id, allowedModels: ['mistral-large'], chatRetentionDays: 30 }, { actor: owner });
    expect(set).toMatchObject({ allowedModels: ['mistral-large'], chatRetentionDays: 30 });

    const cleared = await world.rpc.call(IdentityRpc.updateOrgPolicy, { orgId: org.id, allowedModels: null }, { actor: owner });
    expect(cleared).toMatchObject({ euOnly: true, allowedModels: null, chatRetentionDays: 30 });
    const both = await world.rpc.call(IdentityRpc.updateOrgPolicy, { orgId: org.id, chatRetentionDays: null }, { actor: owner });
    expect(both).toMatchObject({ allowedModels: null, chatRetentionDays: null });
    expect((await world.rpc.call(IdentityRpc.getOrg, { orgId: org.id }, { actor: owner })).policy).toEqual({ euOnly: true, allowedModels: null, chatRetentionDays: null, blockedTerms: [] });

    const event = await lastEvent(world.env, 'identity.organization.policy-changed', (e: any) => e.data.orgId === org.id && e.data.chatRetentionDays === null);
    expect(event.data).toMatchObject({ allowedModels: null, chatRetentionDays: null });

    await expect(world.rpc.call(IdentityRpc.updateOrgPolicy, { orgId: org.id, euOnly: null } as never, { actor: owner })).rejects.toMatchObject({ status: 400, extra: { errors: [{ field: 'euOnly' }] } });
  });
});
