import { describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { IdentityRpc, mergeExportPages, privacyRpcs, type PrivacyExport } from '@ally/contracts';
import { lastEvent } from '@ally/testing';
import { identityWorld } from './identity-world.js';

const PASSWORD = 'Zugvögel im Oktober';
const IdentityPrivacy = privacyRpcs('identity');

describe('identity answers data-subject requests', () => {
  const world = identityWorld();

  it('exports the account, memberships, sessions and login audit of the subject only', async () => {
    const { user } = await world.rpc.call(IdentityRpc.register, { email: 'paula@example.eu', password: PASSWORD, firstName: 'Paula', lastName: 'Schulz' });
    await world.rpc.call(IdentityRpc.register, { email: 'other@example.eu', password: PASSWORD, firstName: 'Otto', lastName: 'Klein' });
    await world.rpc.call(IdentityRpc.login, { email: 'paula@example.eu', password: PASSWORD }, { meta: { ip: '192.0.2.10' } });
    const exported = await world.rpc.call(IdentityPrivacy.export, { userId: user.id, scope: 'all' });
    expect(exported.categories.account).toMatchObject({ email: 'paula@example.eu', first_name: 'Paula' });
    expect(exported.categories['login-audit']).toEqual([expect.objectContaining({ ip: '192.0.2.10', succeeded: true })]);
    expect(JSON.stringify(exported)).not.toContain('other@example.eu');
  });

  it('exports long sessions and login audit lists in pages by keyset: every row once, in order, with ties on the time', async () => {
    const { user } = await world.rpc.call(IdentityRpc.register, { email: 'lang@example.eu', password: PASSWORD, firstName: 'Lars', lastName: 'Lang' });
    await world.env.sql(`UPDATE identity.users SET email_verified_at = now() WHERE id = $1`, [user.id]);
    // Sign-ins from years of use: seven to a microsecond at times (the order then falls to the id).
    await world.env.sql(
      `INSERT INTO identity.login_audit (user_id, ip, succeeded, method, occurred_at)
       SELECT $1, '198.51.100.' || (i % 200), i % 5 <> 0, 'password', timestamptz '2026-01-01 08:00:00+00' + (i / 7) * interval '1 microsecond' + (i % 3) * interval '1 hour'
         FROM generate_series(1, 4000) AS i`,
      [user.id],
    );
    await world.env.sql(
      `INSERT INTO identity.sessions (id, user_id, method, ip, user_agent, created_at, last_used_at, absolute_expires_at)
       SELECT gen_random_uuid(), $1, 'password', '198.51.100.7', repeat('Mozilla/5.0 ', 20), timestamptz '2026-01-01 08:00:00+00' + (i / 3) * interval '1 second', now(), now() + interval '1 day'
         FROM generate_series(1, 2500) AS i`,
      [user.id],
    );
    const pages: PrivacyExport[] = [];
    for (let page: number | string | undefined = 0; page !== undefined; page = pages.at(-1)!.nextPage) {
      pages.push(await world.rpc.call(IdentityPrivacy.export, { userId: user.id, scope: 'all', page }));
    }
    expect(pages.length).toBeGreaterThan(1);
    const merged = mergeExportPages(pages).categories as { sessions: { id: string; created_at: string }[]; 'login-audit': { occurred_at: string }[] };
    const sessions = await world.env.sql<{ id: string }>(`SELECT id FROM identity.sessions WHERE user_id = $1 ORDER BY created_at, id`, [user.id]);
    expect(merged.sessions.map((r) => r.id)).toEqual(sessions.map((r) => r.id));
    const audit = await world.env.sql<{ occurred_at: Date }>(`SELECT occurred_at FROM identity.login_audit WHERE user_id = $1 ORDER BY occurred_at, id`, [user.id]);
    expect(merged['login-audit'].map((r) => new Date(r.occurred_at).getTime())).toEqual(audit.map((r) => r.occurred_at.getTime()));
    expect(audit.length).toBeGreaterThanOrEqual(4000);
  });

  it('erases the account last: sessions end, the owner role passes on, login fails, and events tell the others', async () => {
    const owner = await world.rpc.call(IdentityRpc.register, { email: 'erase@example.eu', password: PASSWORD, firstName: 'Emil', lastName: 'Roth' });
    const member = await world.rpc.call(IdentityRpc.register, { email: 'stays@example.eu', password: PASSWORD, firstName: 'Stella', lastName: 'Kurz' });
    const org = await world.rpc.call(IdentityRpc.createOrg, { name: 'Roth & Kurz OHG' }, { actor: { userId: owner.user.id, platformRoles: [] } });
    await world.env.sql(`INSERT INTO identity.memberships (org_id, user_id, role) VALUES ($1, $2, 'member')`, [org.id, member.user.id]);
    await world.env.sql(`UPDATE identity.users SET email_verified_at = now() WHERE id = $1`, [owner.user.id]);
    // An invitation to the subject's (confirmed) address (from another organisation of theirs) carries it: it goes too.
    await world.env.sql(
      `INSERT INTO identity.invitations (id, org_id, email, role, token_hash, invited_by, expires_at) VALUES (gen_random_uuid(), $1, 'Erase@Example.eu', 'member', 'h-erase', $2, now() + interval '1 day')`,
      [org.id, member.user.id],
    );

    const result = await world.rpc.call(IdentityPrivacy.erase, { userId: owner.user.id, scope: 'all' });
    expect(result.affected).toEqual({ account: 1, memberships: 1 });
    await expect(world.rpc.call(IdentityRpc.login, { email: 'erase@example.eu', password: PASSWORD })).rejects.toMatchObject({ status: 401 });
    await expect(world.rpc.call(IdentityRpc.refresh, { refreshToken: owner.refreshToken })).rejects.toMatchObject({ status: 401 });
    expect(await world.env.sql(`SELECT role FROM identity.memberships WHERE org_id = $1`, [org.id])).toEqual([{ role: 'owner' }]);
    expect(await world.env.sql(`SELECT * FROM identity.users WHERE id = $1`, [owner.user.id])).toEqual([]);
    expect(await world.env.sql(`SELECT * FROM identity.login_audit WHERE user_id = $1`, [owner.user.id])).toEqual([]);
    expect(await world.env.sql(`SELECT * FROM identity.invitations WHERE lower(email) = 'erase@example.eu'`)).toEqual([]);
    await lastEvent(world.env, 'identity.user.deleted', (e) => (e.data as { userId: string }).userId === owner.user.id);
    await lastEvent(world.env, 'identity.member.removed', (e) => (e.data as { userId: string }).userId === owner.user.id);
  });

  it("gives an account none of the sign-ins of another account that had its address before, nor erases them", async () => {
    const before = await world.rpc.call(IdentityRpc.register, { email: 'wechsel@example.eu', password: PASSWORD, firstName: 'Wanda', lastName: 'Wechsel' });
    await world.rpc.call(IdentityRpc.login, { email: 'wechsel@example.eu', password: PASSWORD }, { meta: { ip: '198.51.100.21' } });
    // Wanda moves to another address; Xaver registers the one she left and confirms it.
    await world.env.sql(`UPDATE identity.users SET email = 'wanda.neu@example.eu' WHERE id = $1`, [before.user.id]);
    const after = await world.rpc.call(IdentityRpc.register, { email: 'wechsel@example.eu', password: PASSWORD, firstName: 'Xaver', lastName: 'Nachfolger' });
    await world.env.sql(`UPDATE identity.users SET email_verified_at = now() WHERE id = $1`, [after.user.id]);
    await world.rpc.call(IdentityRpc.login, { email: 'wechsel@example.eu', password: PASSWORD }, { meta: { ip: '198.51.100.22' } });

    const exported = await world.rpc.call(IdentityPrivacy.export, { userId: after.user.id, scope: 'all' });
    expect((exported.categories['login-audit'] as { ip: string }[]).map((r) => r.ip)).toEqual(['198.51.100.22']);
    await world.rpc.call(IdentityPrivacy.erase, { userId: after.user.id, scope: 'all' });
    expect(await world.env.sql(`SELECT ip FROM identity.login_audit WHERE user_id = $1`, [before.user.id])).toEqual([{ ip: '198.51.100.21' }]);
  });

  it("gives the next holder of an address none of the sign-ins a moved account's first reset takes from it", async () => {
    const mover = await world.rpc.call(IdentityRpc.register, { email: 'umzug@example.eu', password: PASSWORD, firstName: 'Ulla', lastName: 'Umzug' });
    await world.rpc.call(IdentityRpc.login, { email: 'umzug@example.eu', password: PASSWORD }, { meta: { ip: '192.0.2.131' } });
    // Moved (the password counts as not proven for the new address), then the new address's first reset: the account's
    // sign-ins leave it, as a squatter's would, and those under the address it had before name no address.
    await world.env.sql(`UPDATE identity.users SET email = 'ulla.neu@example.eu', email_verified_at = now(), password_proven_at = NULL WHERE id = $1`, [mover.user.id]);
    await world.rpc.call(IdentityRpc.forgotPassword, { email: 'ulla.neu@example.eu' });
    const { resetToken } = (await lastEvent<{ userId: string; resetToken: string }>(world.env, 'identity.password.reset-requested', (e) => e.data.userId === mover.user.id)).data;
    await world.rpc.call(IdentityRpc.resetPassword, { token: resetToken, password: 'Ulla zieht um nach Kiel 27' });
    expect(await world.env.sql(`SELECT user_id, email_hash FROM identity.login_audit WHERE ip = '192.0.2.131'`)).toEqual([{ user_id: null, email_hash: null }]);

    const next = await world.rpc.call(IdentityRpc.register, { email: 'umzug@example.eu', password: PASSWORD, firstName: 'Nina', lastName: 'Nachmieter' });
    await world.env.sql(`UPDATE identity.users SET email_verified_at = now() WHERE id = $1`, [next.user.id]);
    const exported = await world.rpc.call(IdentityPrivacy.export, { userId: next.user.id, scope: 'all' });
    expect(JSON.stringify(exported)).not.toContain('192.0.2.131');
  });

  it("gives an account whose address is not confirmed nothing tied to the address alone, nor erases it: whoever registered need not own it", async () => {
    const inviter = await world.rpc.call(IdentityRpc.register, { email: 'chefin@example.eu', password: PASSWORD, firstName: 'Clara', lastName: 'Chef' });
    const org = await world.rpc.call(IdentityRpc.createOrg, { name: 'Neue Leute GmbH' }, { actor: { userId: inviter.user.id, platformRoles: [] } });
    // A new hire is invited; someone else registers their address first and never confirms it.
    await world.env.sql(
      `INSERT INTO identity.invitations (id, org_id, email, role, token_hash, invited_by, expires_at) VALUES (gen_random_uuid(), $1, 'neu@example.eu', 'member', 'h-neu', $2, now() + interval '1 day')`,
      [org.id, inviter.user.id],
    );
    const squatter = await world.rpc.call(IdentityRpc.register, { email: 'neu@example.eu', password: PASSWORD, firstName: 'Sam', lastName: 'Squat' });
    // The owner of the address tries to sign in (their IP), and the squatter does.
    await expect(world.rpc.call(IdentityRpc.login, { email: 'neu@example.eu', password: 'the owner guesses' }, { meta: { ip: '203.0.113.77' } })).rejects.toMatchObject({ status: 401 });
    await world.rpc.call(IdentityRpc.login, { email: 'neu@example.eu', password: PASSWORD }, { meta: { ip: '192.0.2.66' } });
    // A sign-in recorded under the address's hash alone (as while an audit is paused).
    const [{ email_hash: hash }] = await world.env.sql<{ email_hash: string }>(`SELECT email_hash FROM identity.login_audit WHERE user_id = $1 LIMIT 1`, [squatter.user.id]);
    await world.env.sql(`INSERT INTO identity.login_audit (user_id, email_hash, ip, succeeded, method) VALUES (NULL, $1, '203.0.113.78', false, 'password')`, [hash]);

    const unconfirmed = await world.rpc.call(IdentityPrivacy.export, { userId: squatter.user.id, scope: 'all' });
    expect((unconfirmed.categories.memberships as { invitations: { received: unknown[] } }).invitations.received).toEqual([]);
    expect(unconfirmed.categories['login-audit']).toEqual([expect.objectContaining({ ip: '192.0.2.66', succeeded: true })]);
    expect(JSON.stringify(unconfirmed)).not.toContain('203.0.113.7');

    // Confirmed, the address's invitations and sign-ins are the account holder's.
    await world.env.sql(`UPDATE identity.users SET email_verified_at = now() WHERE id = $1`, [squatter.user.id]);
    const confirmed = await world.rpc.call(IdentityPrivacy.export, { userId: squatter.user.id, scope: 'all' });
    expect((confirmed.categories.memberships as { invitations: { received: unknown[] } }).invitations.received).toEqual([expect.objectContaining({ org_name: 'Neue Leute GmbH' })]);
    expect((confirmed.categories['login-audit'] as { ip: string }[]).map((r) => r.ip).sort()).toEqual(['192.0.2.66', '203.0.113.77', '203.0.113.78']);

    // Unconfirmed again: its erasure leaves the invitation and the address's own sign-ins to their owner.
    await world.env.sql(`UPDATE identity.users SET email_verified_at = NULL WHERE id = $1`, [squatter.user.id]);
    await world.rpc.call(IdentityPrivacy.erase, { userId: squatter.user.id, scope: 'all' });
    expect(await world.env.sql(`SELECT 1 FROM identity.invitations WHERE email = 'neu@example.eu'`)).toHaveLength(1);
    expect(await world.env.sql(`SELECT ip FROM identity.login_audit WHERE email_hash = $1 AND user_id IS NULL`, [hash])).toEqual([{ ip: '203.0.113.78' }]);
  });

  it('an organisation created while its owner is being erased is either dissolved with them or refused with 401, never left without members', async () => {
    for (let round = 0; round < 6; round++) {
      const { user } = await world.rpc.call(IdentityRpc.register, { email: `race-${round}@example.eu`, password: PASSWORD, firstName: 'Rita', lastName: 'Renn' });
      const actor = { userId: user.id, platformRoles: [] as [] };
      const creates = Array.from({ length: 4 }, (_, i) =>
        world.rpc.call(IdentityRpc.createOrg, { name: `Renn ${round}-${i}` }, { actor }).then(
          (org) => org.id as string,
          (err) => err.status as number,
        ),
      );
      await world.rpc.call(IdentityPrivacy.erase, { userId: user.id, scope: 'all' });
      const answers = await Promise.all(creates);
      expect(answers.filter((a) => typeof a === 'number')).toEqual(answers.filter((a) => a === 401));
      const created = answers.filter((a): a is string => typeof a === 'string');
      // Each one that was created went with its only member, and said so.
      expect(await world.env.sql(`SELECT id FROM identity.organizations WHERE id = ANY($1::uuid[])`, [created])).toEqual([]);
      for (const orgId of created) await lastEvent(world.env, 'identity.organization.dissolved', (e) => (e.data as { orgId: string }).orgId === orgId);
    }
  });

  it('an erasure meeting an invitation its subject is sending waits for it instead of deadlocking', async () => {
    const { user } = await world.rpc.call(IdentityRpc.register, { email: 'einlader@example.eu', password: PASSWORD, firstName: 'Ines', lastName: 'Einlader' });
    const org = await world.rpc.call(IdentityRpc.createOrg, { name: 'Einlader KG' }, { actor: { userId: user.id, platformRoles: [] } });
    // The invitation's own order: the inviter's membership (FOR SHARE), then the invitation, whose key holds the account.
    const sending = new pg.Client({ connectionString: world.env.adminUrl });
    await sending.connect();
    try {
      await sending.query('BEGIN');
      await sending.query(`SELECT 1 FROM identity.memberships WHERE org_id = $1 AND user_id = $2 FOR SHARE`, [org.id, user.id]);
      const erasure = world.rpc.call(IdentityPrivacy.erase, { userId: user.id, scope: 'all' });
      await new Promise((r) => setTimeout(r, 300));
      await sending.query(
        `INSERT INTO identity.invitations (id, org_id, email, role, token_hash, invited_by, expires_at) VALUES ($1, $2, 'gast@example.eu', 'member', $3, $4, now() + interval '1 day')`,
        [randomUUID(), org.id, `h-${randomUUID()}`, user.id],
      );
      await sending.query('COMMIT');
      await expect(erasure).resolves.toMatchObject({ affected: { account: 1 } });
    } finally {
      await sending.end();
    }
  });

  it("an erasure of one organisation's data by its only owner hands the owner role on, to an admin first, and keeps the account", async () => {
    const owner = await world.rpc.call(IdentityRpc.register, { email: 'solo@example.eu', password: PASSWORD, firstName: 'Sonja', lastName: 'Lorenz' });
    const member = await world.rpc.call(IdentityRpc.register, { email: 'early@example.eu', password: PASSWORD, firstName: 'Erik', lastName: 'Frueh' });
    const admin = await world.rpc.call(IdentityRpc.register, { email: 'admin@example.eu', password: PASSWORD, firstName: 'Ada', lastName: 'Admin' });
    const org = await world.rpc.call(IdentityRpc.createOrg, { name: 'Lorenz GmbH' }, { actor: { userId: owner.user.id, platformRoles: [] } });
    await world.env.sql(`INSERT INTO identity.memberships (org_id, user_id, role, created_at) VALUES ($1, $2, 'member', now() - interval '2 days'), ($1, $3, 'admin', now())`, [org.id, member.user.id, admin.user.id]);

    const result = await world.rpc.call(IdentityPrivacy.erase, { userId: owner.user.id, scope: org.id.toUpperCase() });
    expect(result.affected).toEqual({ memberships: 1 });
    expect(await world.env.sql(`SELECT user_id, role FROM identity.memberships WHERE org_id = $1 ORDER BY role::text DESC`, [org.id])).toEqual([
      { user_id: admin.user.id, role: 'owner' },
      { user_id: member.user.id, role: 'member' },
    ]);
    await world.rpc.call(IdentityRpc.login, { email: 'solo@example.eu', password: PASSWORD });
  });
});
