import { Inject, Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { randomUUID } from 'node:crypto';
import type { z } from 'zod';
import {
  decodeCursor,
  keysetPage,
  limitReached,
  managesOrg,
  ProblemError,
  type Actor,
  type Invitation,
  type Member,
  type Membership,
  type OrgPolicy,
  type OrgRole,
  type Organization,
  type Page,
  type PendingInvitation,
  type RequestMeta,
  type updateOrgPolicyInput,
} from '@ally/contracts';
import { lockNamed } from '@ally/persistence';
import { IDENTITY_CONFIG, type IdentityConfig } from '../config.js';
import { IdentityOutbox } from '../common/identity-outbox.js';
import { hashSecret, newSecret } from '../common/secrets.js';
import type { UserEntity } from '../users/user.entity.js';
import { UsersRepository } from '../users/users.repository.js';
import { holdCallerWithLiveSession } from '../sessions/live-session.js';
import { InvitationEntity } from './invitation.entity.js';
import { MembershipEntity } from './membership.entity.js';
import { OrganizationEntity } from './organization.entity.js';


interface MemberRow {
  id: string;
  first_name: string;
  last_name: string;
  email: string;
  role: OrgRole;
  created_at: Date;
}

/** An organisation the caller does not belong to does not exist for them (404, never 403). */
const notFound = () => new ProblemError(404, 'Organisation not found');

@Injectable()
export class OrgsService {
  constructor(
    private readonly ds: DataSource,
    private readonly users: UsersRepository,
    private readonly outbox: IdentityOutbox,
    @Inject(IDENTITY_CONFIG) private readonly config: IdentityConfig,
  ) {}

  async create(actor: Actor, name: string, meta?: RequestMeta): Promise<Organization> {
    return this.ds.transaction(async (em) => {
      // Holds off an erasure of the account until this commits, and waits for one that got there first: then the
      // account is gone here, not an organisation left without members.
      await holdCallerWithLiveSession(em, actor);
      const user = await this.users.findById(actor.userId, em);
      if (!user) throw new ProblemError(401, 'The account no longer exists');
      await this.assertRoomForMembership(em, user.id);
      return this.createInTx(em, user, name, meta);
    });
  }

  async createInTx(em: EntityManager, owner: UserEntity, name: string, meta?: RequestMeta): Promise<Organization> {
    const org = em.getRepository(OrganizationEntity).create({ id: randomUUID(), name, euOnly: true, allowedModels: null, chatRetentionDays: null, blockedTerms: [] });
    await em.getRepository(OrganizationEntity).insert(org);
    await em.getRepository(MembershipEntity).insert({ orgId: org.id, userId: owner.id, role: 'owner' });
    const subject = { orgId: org.id, userId: owner.id };
    await this.outbox.append(em, 'identity.organization.created', { orgId: org.id, name, ownerId: owner.id }, { subject, correlationId: meta?.correlationId });
    await this.outbox.append(em, 'identity.member.added', { orgId: org.id, userId: owner.id, role: 'owner', ...(await countMembers(em, org.id)) }, { subject });
    return this.toOrganization(org, 'owner');
  }

  /** Room for one more organisation of the user's, counted in turn with their other joins and creations. */
  private async assertRoomForMembership(em: EntityManager, userId: string): Promise<void> {
    await lockNamed(em, `memberships:${userId}`);
    const [{ n }] = await em.query(`SELECT count(*)::int AS n FROM memberships WHERE user_id = $1`, [userId]);
    if (n >= this.config.MAX_ORGS_PER_USER) {
      throw limitReached(`You belong to ${this.config.MAX_ORGS_PER_USER} organisations, the most one account may; leave one to create or join another`);
    }
  }

  async get(actor: Actor, orgId: string): Promise<Organization> {
    const membership = await this.membershipOf(actor.userId, orgId);
    // Dissolved between the two reads (its last member erased): gone, as for anyone now.
    const org = await this.ds.getRepository(OrganizationEntity).findOneBy({ id: orgId });
    if (!org) throw notFound();
    return this.toOrganization(org, membership.role);
  }

  /** Members in order of joining, a page at a time; the keyset as in API keys' list (joining time to the millisecond, user id). */
  async members(actor: Actor, orgId: string, limit: number, cursor?: string): Promise<Page<Member>> {
    const after = decodeCursor(cursor);
    await this.membershipOf(actor.userId, orgId);
    const params: unknown[] = [orgId];
    let keyset = '';
    if (after) {
      params.push(after.at, after.id);
      keyset = ` AND (date_trunc('milliseconds', m.created_at), m.user_id) > ($2::timestamptz, $3::uuid)`;
    }
    const rows: MemberRow[] = await this.ds.query(
      `SELECT u.id, u.first_name, u.last_name, u.email, m.role, m.created_at
         FROM memberships m JOIN users u ON u.id = m.user_id
        WHERE m.org_id = $1${keyset}
        ORDER BY date_trunc('milliseconds', m.created_at), m.user_id
        LIMIT ${limit + 1}`,
      params,
    );
    const { page, nextCursor } = keysetPage(rows, limit, (r) => [new Date(r.created_at), r.id]);
    return {
      data: page.map((r) => ({ userId: r.id, firstName: r.first_name, lastName: r.last_name, email: r.email, role: r.role, joinedAt: new Date(r.created_at).toISOString() })),
      nextCursor,
    };
  }

  async invite(actor: Actor, input: { orgId: string; email: string; role: 'admin' | 'member' }): Promise<Invitation> {
    return this.ds.transaction(async (em) => {
      await holdCallerWithLiveSession(em, actor);
      // Members change in turn: an acceptance committing now is seen below (a member with an invitation still open
      // could use it after their removal), and the membership rows are locked in the order a removal takes them.
      await lockMembers(em, input.orgId);
      // Shared-locked: a removal of the inviter at the same moment waits for this invitation and then deletes it with
      // their others, or comes first and this one finds no membership (it survived the removal, a way back in).
      const membership = await this.membershipOf(actor.userId, input.orgId, em, 'pessimistic_read');
      if (!managesOrg(membership.role)) throw new ProblemError(403, 'Only owners and admins can invite');
      // An invitation is a mail in the inviter's name to an address of their choice: only from an address shown to be theirs.
      const inviter = await this.users.findById(actor.userId, em);
      if (!inviter?.emailVerifiedAt) {
        throw new ProblemError(403, 'Confirm your email address (the link in the mail we sent) before inviting others', { type: 'https://ally.eu/problems/email-not-verified' });
      }
      // Each invitation is a mail in Ally's name: a person's day has room for so many, over all their organisations.
      await lockNamed(em, `invitations-by:${actor.userId}`);
      const [{ sent }] = await em.query(`SELECT count(*)::int AS sent FROM invitations_sent WHERE user_id = $1 AND sent_at > now() - interval '1 day'`, [actor.userId]);
      if (sent >= this.config.MAX_INVITATIONS_PER_DAY) {
        throw limitReached(`You sent ${this.config.MAX_INVITATIONS_PER_DAY} invitations in the last 24 hours, the most one person may; try again tomorrow`);
      }
      const org = await em.getRepository(OrganizationEntity).findOneByOrFail({ id: input.orgId });
      const existing = await em.query(
        `SELECT 1 FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.org_id = $1 AND lower(u.email) = lower($2)`,
        [input.orgId, input.email],
      );
      if (existing.length) throw new ProblemError(409, 'This person is already a member', { errors: [{ field: 'email', message: 'is already a member' }] });
      // The newest invitation to an address is the one that counts: an earlier one still open (another role, say) stops working.
      // Two sent at once to the same address take turns, so the second replaces the first rather than both staying open.
      await lockNamed(em, `invitation:${input.orgId}:${input.email.toLowerCase()}`);
      await dropInvitations(em, `org_id = $1 AND lower(email) = lower($2)`, [input.orgId, input.email]);
      // Only an account that proved the address speaks for its owner (whose restriction pauses the mail, whose language it
      // is in): one never confirmed may be a squatter's, who would otherwise keep every invitation from the address.
      const account = await this.users.findByEmail(input.email, em);
      const invitee = account?.emailVerifiedAt ? account : undefined;
      const token = newSecret();
      const invitation = em.getRepository(InvitationEntity).create({
        id: randomUUID(),
        orgId: input.orgId,
        email: input.email,
        role: input.role,
        tokenHash: hashSecret(token),
        invitedBy: actor.userId,
        expiresAt: new Date(Date.now() + this.config.INVITATION_TTL_SECONDS * 1000),
        acceptedAt: null,
      });
      await em.getRepository(InvitationEntity).insert(invitation);
      await em.query(`INSERT INTO invitations_sent (user_id) VALUES ($1)`, [actor.userId]);
      await this.outbox.append(
        em,
        'identity.invitation.created',
        {
          invitationId: invitation.id,
          orgId: org.id,
          orgName: org.name,
          email: input.email,
          ...(invitee ? { inviteeUserId: invitee.id } : {}),
          role: input.role,
          invitedBy: inviter ? `${inviter.firstName} ${inviter.lastName}` : org.name,
          token,
          locale: invitee?.locale ?? inviter?.locale ?? 'de',
          validForSeconds: this.config.INVITATION_TTL_SECONDS,
        },
        // The inviter is a subject of it too (their name is in it): their erasure forgets it.
        { subject: { orgId: org.id, userId: actor.userId } },
      );
      return { id: invitation.id, orgId: org.id, email: input.email, role: input.role, expiresAt: invitation.expiresAt.toISOString() };
    });
  }

  /** Invitations still open (not accepted, not expired), newest first, a page at a time: for owners and admins. */
  async invitations(actor: Actor, orgId: string, limit: number, cursor?: string): Promise<Page<PendingInvitation>> {
    const membership = await this.membershipOf(actor.userId, orgId);
    if (!managesOrg(membership.role)) throw new ProblemError(403, 'Only owners and admins see the invitations');
    const after = decodeCursor(cursor);
    const params: unknown[] = [orgId];
    let keyset = '';
    if (after) {
      params.push(after.at, after.id);
      keyset = ` AND (date_trunc('milliseconds', created_at), id) < ($2::timestamptz, $3::uuid)`;
    }
    const rows: { id: string; email: string; role: 'admin' | 'member'; invited_by: string | null; created_at: Date; expires_at: Date }[] = await this.ds.query(
      `SELECT id, email, role, invited_by, created_at, expires_at FROM invitations
        WHERE org_id = $1 AND accepted_at IS NULL AND expires_at > now()${keyset}
        ORDER BY date_trunc('milliseconds', created_at) DESC, id DESC
        LIMIT ${limit + 1}`,
      params,
    );
    const { page, nextCursor } = keysetPage(rows, limit, (r) => [new Date(r.created_at), r.id]);
    return {
      data: page.map((r) => ({
        id: r.id,
        orgId,
        email: r.email,
        role: r.role,
        invitedBy: r.invited_by,
        createdAt: new Date(r.created_at).toISOString(),
        expiresAt: new Date(r.expires_at).toISOString(),
      })),
      nextCursor,
    };
  }

  /** Takes back an invitation nobody accepted (sent to a wrong address, say): its link stops working. */
  async revokeInvitation(actor: Actor, orgId: string, invitationId: string): Promise<void> {
    await this.ds.transaction(async (em) => {
      await holdCallerWithLiveSession(em, actor);
      await lockMembers(em, orgId);
      const membership = await this.membershipOf(actor.userId, orgId, em, 'pessimistic_read');
      if (!managesOrg(membership.role)) throw new ProblemError(403, 'Only owners and admins can revoke invitations');
      if (!(await dropInvitations(em, `id = $1 AND org_id = $2`, [invitationId, orgId]))) throw new ProblemError(404, 'No open invitation of this organisation has this id');
    });
  }

  /** The invitation is bound to its address: only the account with that email can accept it. */
  async accept(actor: Actor, token: string): Promise<Membership> {
    return this.ds.transaction(async (em) => {
      // As a new organisation does: an erasure of the account under way is waited for (then the account is gone here),
      // or waits for this; an erasure that read the memberships before would miss this one (no member.removed, a seat billed on).
      await holdCallerWithLiveSession(em, actor);
      // The organisation's members are counted in turn (below); its lock comes before the invitation's, as in a removal.
      const sought = await em.getRepository(InvitationEntity).findOne({ where: { tokenHash: hashSecret(token) }, select: { orgId: true } });
      if (sought) await lockMembers(em, sought.orgId);
      const invitation = await em.getRepository(InvitationEntity).findOne({ where: { tokenHash: hashSecret(token) }, lock: { mode: 'pessimistic_write' } });
      // A newer invitation to the same address replaces the older (its token is gone): the words say so too.
      const invalid = new ProblemError(400, 'The invitation is invalid, expired, already used or replaced by a newer one', {
        errors: [{ field: 'token', message: 'is invalid, expired, already used or replaced by a newer invitation' }],
      });
      if (!invitation || invitation.acceptedAt || invitation.expiresAt.getTime() < Date.now()) throw invalid;
      const user = await this.users.findById(actor.userId, em);
      if (!user || user.email.toLowerCase() !== invitation.email.toLowerCase()) {
        throw new ProblemError(403, 'This invitation was sent to another email address');
      }
      const org = await em.getRepository(OrganizationEntity).findOneByOrFail({ id: invitation.orgId });
      await em.getRepository(InvitationEntity).update({ id: invitation.id }, { acceptedAt: new Date() });
      const already = await em.getRepository(MembershipEntity).findOneBy({ orgId: org.id, userId: user.id });
      if (!already) {
        await this.assertRoomForMembership(em, user.id);
        await em.getRepository(MembershipEntity).insert({ orgId: org.id, userId: user.id, role: invitation.role });
        await this.outbox.append(em, 'identity.member.added', { orgId: org.id, userId: user.id, role: invitation.role, ...(await countMembers(em, org.id)) }, { subject: { orgId: org.id, userId: user.id } });
      }
      return { orgId: org.id, orgName: org.name, role: already?.role ?? invitation.role };
    });
  }

  async removeMember(actor: Actor, orgId: string, userId: string): Promise<void> {
    await this.ds.transaction(async (em) => {
      await holdCallerWithLiveSession(em, actor);
      await lockMembers(em, orgId);
      // Both memberships, and every owner's, locked in one order before any is read: two admins removing each other
      // at once both succeeded (each read its own membership unlocked), and two owners leaving at once could each
      // count the other and leave the organisation without one; now the second sees what the first did.
      await em.query(`SELECT 1 FROM memberships WHERE org_id = $1 AND (user_id = ANY($2::uuid[]) OR role = 'owner') ORDER BY user_id FOR UPDATE`, [
        orgId,
        [actor.userId, userId],
      ]);
      const mine = await this.membershipOf(actor.userId, orgId, em);
      const self = actor.userId === userId;
      if (!self && !managesOrg(mine.role)) throw new ProblemError(403, 'Only owners and admins can remove members');
      const target = await em.getRepository(MembershipEntity).findOne({ where: { orgId, userId }, lock: { mode: 'pessimistic_write' } });
      if (!target) throw new ProblemError(404, 'Member not found');
      if (target.role === 'owner' && mine.role !== 'owner') throw new ProblemError(403, 'Only an owner can remove an owner');
      if (target.role === 'owner') {
        const owners = await em.getRepository(MembershipEntity).countBy({ orgId, role: 'owner' });
        if (owners <= 1) throw new ProblemError(409, 'An organisation needs at least one owner');
      }
      await em.getRepository(MembershipEntity).delete({ orgId, userId });
      // Their keys for this workspace end with the membership, for good: a later invitation does not bring them back.
      await em.query(`UPDATE api_keys SET revoked_at = now() WHERE user_id = $1 AND workspace = $2 AND revoked_at IS NULL`, [userId, orgId]);
      // So do the invitations they sent and nobody has accepted yet: an admin who is removed must not come back
      // (or bring anyone in) through an invitation sent to a second address of theirs while still an admin. And
      // those to their own address (sent while they were a member): removed is removed until invited anew.
      await dropInvitations(em, `org_id = $1 AND (invited_by = $2 OR lower(email) = (SELECT lower(email) FROM users WHERE id = $2))`, [orgId, userId]);
      await this.outbox.append(em, 'identity.member.removed', { orgId, userId, ...(await countMembers(em, orgId)) }, { subject: { orgId, userId } });
    });
  }

  async updatePolicy(actor: Actor, input: z.infer<typeof updateOrgPolicyInput>): Promise<OrgPolicy> {
    return this.ds.transaction(async (em) => {
      await holdCallerWithLiveSession(em, actor);
      // Held while the policy changes: an admin demoted or removed at the same moment changes nothing (the role is read after).
      await em.query(`SELECT 1 FROM memberships WHERE org_id = $1 AND user_id = $2 FOR SHARE`, [input.orgId, actor.userId]);
      const mine = await this.membershipOf(actor.userId, input.orgId, em);
      if (!managesOrg(mine.role)) throw new ProblemError(403, 'Only owners and admins can change the policy');
      const repo = em.getRepository(OrganizationEntity);
      // Locked: two admins changing different fields at once both keep theirs, and each event names the policy that holds.
      const org = await repo.findOneOrFail({ where: { id: input.orgId }, lock: { mode: 'pessimistic_write' } });
      if (input.euOnly !== undefined) org.euOnly = input.euOnly;
      if (input.allowedModels !== undefined) org.allowedModels = input.allowedModels;
      if (input.chatRetentionDays !== undefined) org.chatRetentionDays = input.chatRetentionDays;
      if (input.blockedTerms !== undefined) org.blockedTerms = input.blockedTerms;
      await repo.save(org);
      const policy = this.policyOf(org);
      await this.outbox.append(em, 'identity.organization.policy-changed', { orgId: org.id, ...policy }, { subject: { orgId: org.id } });
      return policy;
    });
  }

  private async membershipOf(userId: string, orgId: string, em?: EntityManager, lock?: 'pessimistic_read'): Promise<MembershipEntity> {
    const m = await (em ?? this.ds.manager).getRepository(MembershipEntity).findOne({ where: { orgId, userId }, ...(lock ? { lock: { mode: lock } } : {}) });
    if (!m) throw notFound();
    return m;
  }

  private policyOf(org: OrganizationEntity): OrgPolicy {
    return { euOnly: org.euOnly, allowedModels: org.allowedModels, chatRetentionDays: org.chatRetentionDays, blockedTerms: org.blockedTerms ?? [] };
  }

  private toOrganization(org: OrganizationEntity, role: OrgRole): Organization {
    return { id: org.id, name: org.name, role, policy: this.policyOf(org), createdAt: new Date(org.createdAt ?? Date.now()).toISOString() };
  }
}

/**
 * Deletes open invitations (`where` over `invitations`), and their mails not yet sent: the link goes with the
 * row, but the mail (the organisation's and the inviter's names) would still go out while the outbox waited.
 */
export async function dropInvitations(em: Pick<EntityManager, 'query'>, where: string, params: unknown[]): Promise<number> {
  const [gone]: [{ id: string }[], number] = await em.query(`DELETE FROM invitations WHERE accepted_at IS NULL AND ${where} RETURNING id`, params);
  if (gone.length) {
    await em.query(`DELETE FROM outbox WHERE sent_at IS NULL AND type = 'identity.invitation.created' AND payload->'data'->>'invitationId' = ANY($1::text[])`, [gone.map((r) => r.id)]);
  }
  return gone.length;
}

/**
 * Changes to an organisation's members take turns: each event's `memberCount`
 * (billing's seats) counts the members as its change left them, so the newest
 * event holds the real count. Taken before any row lock of the change.
 */
export async function lockMembers(em: Pick<EntityManager, 'query'>, orgId: string): Promise<void> {
  await lockNamed(em, `members:${orgId}`);
}

/**
 * The organisation's member count for its event, with the database's time of the count (to the microsecond):
 * taken under `lockMembers`, it orders the counts as they happened, whichever replica's clock stamps the event.
 */
export async function countMembers(em: Pick<EntityManager, 'query'>, orgId: string): Promise<{ memberCount: number; countedAt: string }> {
  const [{ memberCount, countedAt }] = await em.query(
    `SELECT count(*)::int AS "memberCount", to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS "countedAt" FROM memberships WHERE org_id = $1`,
    [orgId],
  );
  return { memberCount, countedAt };
}
