import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { NIL_UUID, pagedExport, type ExportList, type IdentityEventType, type PrivacyErasure, type PrivacyExport } from '@ally/contracts';
import { forgetSubjectInOutbox } from '@ally/messaging';
import { lockSubject } from '@ally/persistence';
import { IdentityOutbox } from '../common/identity-outbox.js';
import { countMembers, dropInvitations, lockMembers } from '../orgs/orgs.service.js';
import { AddressHashes } from '../common/address-hash.js';

/**
 * The invitations an export shows and an erasure covers, within one
 * organisation ($2) or all ($2 NULL): those to the subject's address
 * (addresses are stored lower-case), once they confirmed it is theirs (see
 * `addressProven`), and those they sent. One condition for both, so an
 * erasure takes exactly what the export showed.
 */
const RECEIVED = `lower(i.email) = (SELECT email FROM users WHERE id = $1 AND email_verified_at IS NOT NULL) AND ($2::uuid IS NULL OR i.org_id = $2)`;
const SENT = `i.invited_by = $1 AND ($2::uuid IS NULL OR i.org_id = $2)`;

/**
 * What is tied to an address rather than to the account (invitations to it, mails and sign-ins before or beside
 * the account) is the subject's once they confirmed the address is theirs: anyone may register an account with
 * an address they do not own, and its requests must neither hand over nor erase the owner's data.
 */
const addressProven = (account: { email_verified_at: Date | null }): boolean => account.email_verified_at !== null;

/** Events about the subject that only mail them or follow their own account: nobody needs them once the account is erased. */
const ABOUT_THE_SUBJECT_ALONE = [
  'identity.user.registered',
  'identity.user.verified',
  'identity.user.settings-changed',
  'identity.user.residency-set',
  'identity.user.updated',
  'identity.user.signed-in',
  'identity.password.reset-requested',
  'identity.user.email-change-requested',
  'identity.user.email-changed',
] as const satisfies readonly IdentityEventType[];

/**
 * identity's part of data-subject requests. Erasure of the whole account is
 * the last step of a saga: the user row goes, and with it (ON DELETE CASCADE)
 * sessions, tokens, memberships, API keys, SSO links and the login audit;
 * every session ends at once. An organisation that would be left without an
 * owner gets its longest-standing member as owner.
 */
@Injectable()
export class IdentityPrivacyService {
  constructor(
    private readonly ds: DataSource,
    private readonly outbox: IdentityOutbox,
    private readonly addresses: AddressHashes,
  ) {}

  /**
   * One page of the subject's export: account, memberships, keys and links on the first pages, then sessions
   * and the login audit (rows per sign-in) read by keyset, so no page rebuilds the whole log.
   */
  async export(userId: string, scope: string, page: number | string = 0): Promise<PrivacyExport> {
    const lists: ExportList[] = scope === 'all' ? [this.sessions(userId), this.loginAudit(userId)] : [];
    return pagedExport('identity', page, () => this.exportedRecords(userId, scope), lists);
  }

  private async exportedRecords(userId: string, scope: string): Promise<Record<string, unknown>> {
    const q = (sql: string, params: unknown[] = [userId]) => this.ds.query(sql, params);
    // An address change waiting for its confirmation is theirs too: the address they asked to move to.
    const [account] = await q(
      `SELECT id, email, first_name, last_name, locale, email_verified_at, platform_roles, restrict_to_eu, created_at, updated_at,
         (SELECT json_build_object('email', t.new_email, 'expires_at', t.expires_at) FROM one_time_tokens t
           WHERE t.user_id = users.id AND t.purpose = 'email_change' AND t.used_at IS NULL AND t.expires_at > now() ORDER BY t.created_at DESC LIMIT 1) AS pending_email_change
         FROM users WHERE id = $1`,
    );
    // A scope keeps to its workspace: an organisation's membership and keys, or the private workspace's keys.
    const org = scope === 'all' || scope === 'private' ? null : scope;
    const memberships =
      scope === 'private'
        ? []
        : await q(
            `SELECT m.org_id, o.name AS org_name, m.role, m.created_at FROM memberships m JOIN organizations o ON o.id = m.org_id WHERE m.user_id = $1 AND ($2::uuid IS NULL OR m.org_id = $2) ORDER BY m.created_at, m.org_id`,
            [userId, org],
          );
    const apiKeys = await q(
      `SELECT id, name, workspace, prefix, created_at, last_used_at, revoked_at FROM api_keys WHERE user_id = $1 AND ($2::text IS NULL OR workspace = $2) ORDER BY created_at, id`,
      [userId, scope === 'all' ? null : scope],
    );
    // Invitations they received (to their address) and sent (without the invitee's address: another person's).
    const invitations = {
      received: await q(
        `SELECT i.org_id, o.name AS org_name, i.role, i.created_at, i.expires_at, i.accepted_at FROM invitations i JOIN organizations o ON o.id = i.org_id
          WHERE ${RECEIVED} ORDER BY i.created_at, i.id`,
        [userId, org],
      ),
      sent: await q(
        `SELECT i.org_id, o.name AS org_name, i.role, i.created_at, i.expires_at, i.accepted_at FROM invitations i JOIN organizations o ON o.id = i.org_id
          WHERE ${SENT} ORDER BY i.created_at, i.id`,
        [userId, org],
      ),
    };
    if (scope === 'private') return { 'api-keys': apiKeys };
    if (scope !== 'all') return { memberships: { memberships, invitations }, 'api-keys': apiKeys };
    return {
      account: account ?? null,
      memberships: { memberships, invitations },
      'api-keys': apiKeys,
      'sso-links': await q(`SELECT provider, subject, created_at FROM sso_identities WHERE user_id = $1 ORDER BY created_at, provider`),
    };
  }

  private sessions(userId: string): ExportList {
    return {
      category: 'sessions',
      read: async (after, limit) => {
        const rows = await this.ds.query(
          `SELECT id, method, ip, user_agent, created_at, last_used_at, revoked_at, revoked_reason, created_at::text AS place_at FROM sessions
            WHERE user_id = $1 AND (created_at, id) > ($2::timestamptz, $3::uuid) ORDER BY created_at, id LIMIT $4`,
          [userId, after?.[0] ?? '-infinity', after?.[1] ?? NIL_UUID, limit],
        );
        return rows.map(({ place_at, ...value }: { place_at: string; id: string }) => ({ value, place: [place_at, value.id] }));
      },
    };
  }

  /**
   * Sign-ins while the audit was paused for them (objection, restriction) name only their address's hash (rows naming
   * an account are that account's, also one that had the address before). Of an
   * account whose address is not confirmed, only its sign-ins that succeeded: failed ones with that address may be
   * its owner's, from their IP, and whoever registered it need not be the owner.
   */
  private loginAudit(userId: string): ExportList {
    // Asked once per page, whatever number of reads it takes.
    let hashes: Promise<string[] | undefined> | undefined;
    return {
      category: 'login-audit',
      read: async (after, limit) => {
        hashes ??= this.provenAddressHashesOf(userId);
        const proven = await hashes;
        const rows = await this.ds.query(
          `SELECT ip, succeeded, method, occurred_at, occurred_at::text AS place_at, id::text AS place_id FROM login_audit
            WHERE ((user_id = $1 AND ($2::text[] IS NOT NULL OR succeeded)) OR (user_id IS NULL AND email_hash = ANY($2::text[]))) AND (occurred_at, id) > ($3::timestamptz, $4::bigint)
            ORDER BY occurred_at, id LIMIT $5`,
          [userId, proven ?? null, after?.[0] ?? '-infinity', after?.[1] ?? '0', limit],
        );
        return rows.map(({ place_at, place_id, ...value }: { place_at: string; place_id: string }) => ({ value, place: [place_at, place_id] }));
      },
    };
  }

  /** The hashes of the subject's address, if they confirmed it is theirs (`addressProven`); none for an account gone. */
  private async provenAddressHashesOf(userId: string): Promise<string[] | undefined> {
    const [account] = await this.ds.query(`SELECT email, email_verified_at FROM users WHERE id = $1`, [userId]);
    if (!account) return [];
    return addressProven(account) ? this.addresses.all(account.email) : undefined;
  }

  async exists(userId: string): Promise<boolean> {
    return (await this.ds.query(`SELECT 1 FROM users WHERE id = $1`, [userId])).length > 0;
  }

  async erase(userId: string, scope: string): Promise<PrivacyErasure> {
    return this.ds.transaction(async (em): Promise<PrivacyErasure> => {
      // First the subject's lock: an organisation being created by them now holds it (shared) and is waited for, so
      // the read below sees its membership; one after this finds the account gone. An advisory lock, taken first
      // by both, so it adds no lock order (a row lock on the account here deadlocked with an invitation being sent).
      if (scope === 'all') await lockSubject(em, userId, 'exclusive');
      const orgs: { org_id: string }[] =
        scope === 'all' ? await em.query(`SELECT org_id FROM memberships WHERE user_id = $1 ORDER BY org_id`, [userId]) : scope === 'private' ? [] : [{ org_id: scope }];
      let memberships = 0;
      for (const { org_id } of orgs) {
        await lockMembers(em, org_id);
        const [, removed] = await em.query(`DELETE FROM memberships WHERE org_id = $1 AND user_id = $2`, [org_id, userId]);
        if (!removed) continue;
        memberships++;
        // The keys for that workspace go with the membership (as when a member is removed), so a later invitation cannot revive them.
        await em.query(`DELETE FROM api_keys WHERE user_id = $1 AND workspace = lower($2)`, [userId, org_id]);
        // And the invitations they sent that nobody accepted yet, as a removal ends them: none brings them (or anyone) back.
        await dropInvitations(em, `org_id = $1 AND invited_by = $2`, [org_id, userId]);
        const owners = await em.query(`SELECT 1 FROM memberships WHERE org_id = $1 AND role = 'owner'`, [org_id]);
        // An UPDATE's answer is [rows, count].
        const [[promoted]]: [{ user_id: string }[], number] = owners.length
          ? [[], 0]
          : await em.query(
              `UPDATE memberships SET role = 'owner' WHERE (org_id, user_id) = (SELECT org_id, user_id FROM memberships WHERE org_id = $1 ORDER BY (role = 'admin') DESC, created_at LIMIT 1) RETURNING user_id`,
              [org_id],
            );
        const counted = await countMembers(em, org_id);
        await this.outbox.append(em, 'identity.member.removed', { orgId: org_id, userId, ...counted }, { subject: { orgId: org_id, userId } });
        if (counted.memberCount === 0) {
          // The last member gone, nobody could manage the organisation or end what it pays for: it goes (with
          // its invitations), and billing ends its subscription.
          await em.query(`DELETE FROM organizations WHERE id = $1`, [org_id]);
          await this.outbox.append(em, 'identity.organization.dissolved', { orgId: org_id }, { subject: { orgId: org_id } });
          continue;
        }
        // The new owner's role reaches chat's replica (who may manage the organisation there) as a membership stated anew.
        if (promoted) {
          await this.outbox.append(em, 'identity.member.added', { orgId: org_id, userId: promoted.user_id, role: 'owner', ...counted }, { subject: { orgId: org_id, userId: promoted.user_id } });
        }
      }
      if (scope === 'private') {
        // The private workspace's keys are what identity holds of it (its export shows them): they go as an organisation's do.
        const [, keys] = await em.query(`DELETE FROM api_keys WHERE user_id = $1 AND workspace = 'private'`, [userId]);
        return { service: 'identity', affected: { memberships, 'api-keys': Number(keys ?? 0) } };
      }
      // Invitations to them go (they name their address); those they sent stay for the invitee, without the link to them.
      const org = scope === 'all' ? null : scope;
      await em.query(`DELETE FROM invitations i WHERE ${RECEIVED}`, [userId, org]);
      await em.query(`UPDATE invitations i SET invited_by = NULL WHERE ${SENT}`, [userId, org]);
      if (scope !== 'all') return { service: 'identity', affected: { memberships } };
      // Their events still waiting carry their address, name, tokens or IP for mails nobody sends them now: they go;
      // so do invitations they sent and not yet mailed (their rows are gone: no mail in their name goes out).
      // Those others need (memberships, organisations, and this erasure's own news) keep their place.
      await forgetSubjectInOutbox(em, userId, { unpublished: 'drop', onlyTypes: [...ABOUT_THE_SUBJECT_ALONE, 'identity.invitation.created'] });
      const [account]: { email: string; email_verified_at: Date | null }[] = await em.query(`SELECT email, email_verified_at FROM users WHERE id = $1`, [userId]);
      if (account && addressProven(account)) {
        // An invitation to the subject's address still waiting mails nobody now: it goes (its address exactly: another
        // person's that merely contains it, joann@ for ann@, keeps theirs).
        await em.query(`DELETE FROM outbox WHERE sent_at IS NULL AND type = 'identity.invitation.created' AND lower(payload->'data'->>'email') = lower($1)`, [account.email]);
        // Published events of invitations to the address name the address, not the account.
        await forgetSubjectInOutbox(em, account.email);
        // Sign-ins recorded while the audit was paused for them carry only the address's hash, not the account (no cascade);
        // rows of another account that once had this address are theirs, not the subject's.
        await em.query(`DELETE FROM login_audit WHERE user_id IS NULL AND email_hash = ANY($1::text[])`, [this.addresses.all(account.email)]);
      }
      const [, accounts] = await em.query(`DELETE FROM users WHERE id = $1`, [userId]);
      if (accounts) await this.outbox.append(em, 'identity.user.deleted', { userId }, { subject: { userId } });
      return { service: 'identity', affected: { account: Number(accounts), memberships } };
    });
  }
}
