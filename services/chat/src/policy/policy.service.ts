import { Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { IdentityRpc, ProblemError, type Actor } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { lockNamed } from '@ally/persistence';
import { ContentCipher } from '../crypto/content-cipher.service.js';
import { addMembership, putOrgPolicy, putUserSettings, removeMembership } from './replica-rows.js';

export interface RoutingPolicy {
  workspace: string;
  /** The user's own setting (default on). */
  restrictToEu: boolean;
  /** The organisation enforces EU-only for its business workspace. */
  orgEuOnly: boolean;
  allowedModels: string[] | null;
  blockedTerms: string[];
  /** True when the route must stay in the EU, whoever decided it. */
  euOnly: boolean;
}

/** The replica rows one request's policy is made of (see `policyColumns`). */
export interface PolicyRows {
  erased: boolean;
  restricted: boolean;
  restrict_to_eu: boolean | null;
  member: boolean;
  org: { eu_only: boolean; allowed_models: string[] | null; blocked_terms: string[] | null } | null;
}

/**
 * The select list that reads `PolicyRows` for the user and workspace given as
 * SQL expressions, so a caller can read them in the same query as its own rows.
 */
export function policyColumns(user: string, workspace: string, erasureMarks: string): string {
  // 'private' (or anything not a uuid) is no organisation; the guard keeps the cast from failing.
  const org = `(CASE WHEN ${workspace} ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN ${workspace}::uuid END)`;
  return `EXISTS (SELECT 1 FROM erased_subjects WHERE mark = ANY(${erasureMarks})) AS erased,
    EXISTS (SELECT 1 FROM restrictions WHERE user_id = ${user} AND scope IN ('all', ${workspace}) AND lifted_at IS NULL) AS restricted,
    (SELECT restrict_to_eu FROM user_settings WHERE user_id = ${user}) AS restrict_to_eu,
    EXISTS (SELECT 1 FROM memberships WHERE org_id = ${org} AND user_id = ${user}) AS member,
    (SELECT json_build_object('eu_only', eu_only, 'allowed_models', allowed_models, 'blocked_terms', blocked_terms) FROM org_policies WHERE org_id = ${org}) AS org`;
}

/**
 * The policy for one request, from chat's replica of identity's state, read
 * in one query. A user or organisation the replica has not seen yet (older
 * than the stream's 7 days) is fetched from identity once and kept.
 */
/**
 * How many fetches from identity that found nothing (a workspace the user is
 * not in) one user may cause in REFRESH_WINDOW_MS before chat stops asking,
 * and for how many users that is remembered.
 */
const MISSES_PER_WINDOW = 5;
const REFRESH_WINDOW_MS = 10_000;
const REFRESH_MEMORY = 10_000;

@Injectable()
export class PolicyService {
  private readonly misses = new Map<string, number[]>();
  private readonly fetching = new Map<string, Promise<Awaited<ReturnType<PolicyService['fetchRouting']>> | null>>();

  constructor(
    private readonly ds: DataSource,
    private readonly rpc: RpcClient,
    private readonly cipher: ContentCipher,
  ) {}

  async resolve(actor: Actor, workspace: string): Promise<RoutingPolicy> {
    assertKeyScope(actor, workspace);
    const [rows] = await this.ds.query(`SELECT ${policyColumns('$1::uuid', '$2::text', '$3::bytea[]')}`, [actor.userId, workspace, this.cipher.erasureMarks(actor.userId)]);
    return this.fromRows(actor, workspace, rows);
  }

  /** The policy from rows the caller read with `policyColumns`; refusals rank as in `resolve`. */
  async fromRows(actor: Actor, workspace: string, rows: PolicyRows): Promise<RoutingPolicy> {
    assertKeyScope(actor, workspace);
    if (rows.erased) throw new ProblemError(410, 'This account was erased');
    // Not yours first: a restriction filed for someone else's organisation must not turn its 404 into a 403.
    if (workspace !== 'private' && !rows.member && !(await this.refreshMemberships(actor, workspace))) throw new ProblemError(404, 'Workspace not found');
    if (rows.restricted) {
      throw new ProblemError(403, 'Processing of your data is restricted at your request (Art. 18 GDPR); chat is paused until the restriction is lifted', { type: 'https://ally.eu/problems/processing-restricted' });
    }
    const restrictToEu = rows.restrict_to_eu ?? (await this.fetchRestrictToEu(actor));
    if (workspace === 'private') {
      return { workspace, restrictToEu, orgEuOnly: false, allowedModels: null, blockedTerms: [], euOnly: restrictToEu };
    }
    const org = rows.org ?? (await this.fetchOrgPolicy(actor, workspace));
    return {
      workspace,
      restrictToEu,
      orgEuOnly: org.eu_only,
      allowedModels: org.allowed_models,
      blockedTerms: org.blocked_terms ?? [],
      euOnly: restrictToEu || org.eu_only,
    };
  }

  /**
   * Reading what is stored (lists): the key's scope and membership only. A
   * restriction (Art. 18) pauses processing, not the subject's access to
   * their data; a stranger to the workspace gets 404.
   */
  async assertReadable(actor: Actor, workspace: string): Promise<void> {
    assertKeyScope(actor, workspace);
    if (!(await this.isMember(actor, workspace))) throw new ProblemError(404, 'Workspace not found');
  }

  /** The workspaces (`private` plus organisations) this user may use. */
  async isMember(actor: Actor, workspace: string): Promise<boolean> {
    if (workspace === 'private') return true;
    const rows = await this.ds.query(`SELECT 1 FROM memberships WHERE org_id = $1 AND user_id = $2`, [workspace, actor.userId]);
    return rows.length > 0 || this.refreshMemberships(actor, workspace);
  }

  private async fetchRestrictToEu(actor: Actor): Promise<boolean> {
    await this.refreshMemberships(actor, 'private');
    const [fetched] = await this.ds.query(`SELECT restrict_to_eu FROM user_settings WHERE user_id = $1`, [actor.userId]);
    return fetched?.restrict_to_eu ?? true;
  }

  /**
   * Pulls the user's settings and memberships from identity; answers whether
   * `workspace` is among them. A caller naming workspaces it does not belong
   * to costs a few calls (MISSES_PER_WINDOW), not one per request.
   */
  private async refreshMemberships(actor: Actor, workspace: string): Promise<boolean> {
    const now = Date.now();
    const misses = (this.misses.get(actor.userId) ?? []).filter((t) => now - t < REFRESH_WINDOW_MS);
    if (misses.length >= MISSES_PER_WINDOW) return false;
    // Requests of one user at the same moment share one call (a burst right after joining an organisation).
    let fetching = this.fetching.get(actor.userId);
    if (!fetching) {
      // identity no longer knowing the user (a 4xx) is a miss; identity not answering is thrown below.
      fetching = goneIsNothing(this.fetchRouting(actor))
        .then((me) => me ?? null)
        .finally(() => this.fetching.delete(actor.userId));
      this.fetching.set(actor.userId, fetching);
    }
    let me: Awaited<typeof fetching>;
    try {
      me = await fetching;
    } catch {
      // No answer is no "not a member": the caller's own organisation would read as unknown (404) until identity is back.
      // The private workspace goes on with what the replica holds (EU-only when it holds nothing).
      if (workspace === 'private') return false;
      throw new ProblemError(503, 'The identity service did not answer whether you belong to this workspace; try again shortly', { retryAfter: 5 });
    }
    const found = !!me && (workspace === 'private' || me.memberships.some((m) => m.orgId === workspace));
    if (!found) {
      if (this.misses.size >= REFRESH_MEMORY) this.misses.clear();
      this.misses.set(actor.userId, [...misses, now]);
    }
    return found;
  }

  /**
   * The caller just changed their settings or joined an organisation at
   * identity: the replica takes identity's answer now rather than when the
   * event arrives, so a message sent right after `restrictToEu` was switched
   * on cannot leave the EU, and one to the new organisation finds it.
   */
  async refreshUser(actor: Actor): Promise<void> {
    await this.fetchRouting(actor, 'current').catch(() => {
      throw new ProblemError(503, 'The identity service is not available');
    });
    // What they were not a member of a moment ago (an organisation they just joined) is asked for again.
    this.misses.delete(actor.userId);
  }

  /** As `refreshUser`, for an organisation's policy an admin of it just changed. */
  async refreshOrg(actor: Actor, orgId: string): Promise<void> {
    await this.fetchOrgPolicy(actor, orgId, 'current');
  }

  /**
   * A member an admin just removed from an organisation at identity: the
   * replica drops the membership now rather than when the event arrives, so
   * their next message to the organisation's conversations is refused. Only
   * when identity, asked as that user, no longer lists the organisation.
   */
  async refreshRemovedMember(orgId: string, userId: string): Promise<void> {
    const asOf = new Date().toISOString();
    // identity no longer knowing the user (erased meanwhile) is no membership either.
    const me = await goneIsNothing(this.rpc.call(IdentityRpc.getRouting, {}, { actor: { userId, platformRoles: [] } })).catch(() => {
      throw new ProblemError(503, 'The identity service is not available');
    });
    if (me?.memberships.some((m) => m.orgId === orgId)) return;
    await this.ds.transaction((em) => removeMembership(em, orgId, userId, asOf));
  }

  /** Whether the subject's erasure committed here (their replica rows went with it, and none come back). */
  isErased(em: EntityManager, userId: string): Promise<boolean> {
    return this.cipher.isErased(em, userId);
  }

  /** identity deleted the account: its erasure mark may go a day later. */
  async accountDeleted(em: EntityManager, userId: string): Promise<void> {
    await em.query(`UPDATE erased_subjects SET account_deleted_at = coalesce(account_deleted_at, now()) WHERE mark = ANY($1::bytea[])`, [this.cipher.erasureMarks(userId)]);
  }

  /**
   * An event's setting disagreed with a row dated after it: identity's answer of now is what holds,
   * written in the event's transaction. Throws when identity cannot say (the event comes again).
   */
  async reconcileUser(em: EntityManager, userId: string): Promise<void> {
    await goneIsNothing(this.fetchRouting({ userId, platformRoles: [] }, 'current', em));
  }

  /** A membership row dated after its removal's event stays only if identity still has the membership. */
  async reconcileMembership(em: EntityManager, orgId: string, userId: string): Promise<void> {
    const me = await goneIsNothing(this.rpc.call(IdentityRpc.getRouting, {}, { actor: { userId, platformRoles: [] } }));
    if (!me?.memberships.some((m) => m.orgId === orgId)) await em.query(`DELETE FROM memberships WHERE org_id = $1 AND user_id = $2`, [orgId, userId]);
  }

  /** As `reconcileUser`, for an organisation's policy, asked as one of its members chat knows (identity shows a policy to members only). */
  async reconcileOrg(em: EntityManager, orgId: string): Promise<void> {
    const [member] = await em.query(`SELECT user_id FROM memberships WHERE org_id = $1 ORDER BY updated_at DESC LIMIT 1`, [orgId]);
    if (member) await goneIsNothing(this.fetchOrgPolicy({ userId: member.user_id, platformRoles: [] }, orgId, 'current', em));
  }

  /**
   * The user's settings and memberships from identity, kept in the replica dated to before the call;
   * `settings`: whether they replace the row (right after a change: see `current`) or only fill a gap;
   * `em`: the caller's transaction, otherwise one of its own. identity's refusal or silence is thrown.
   */
  private async fetchRouting(actor: Actor, settings: 'keep' | 'current' = 'keep', em?: EntityManager) {
    const read = async () => {
      const asOf = new Date().toISOString();
      return { asOf, me: await this.rpc.call(IdentityRpc.getRouting, {}, { actor: { userId: actor.userId, platformRoles: [] } }) };
    };
    const write = async (em: EntityManager, { asOf, me }: Awaited<ReturnType<typeof read>>) => {
      await putUserSettings(em, me.id, me.restrictToEu, asOf, settings);
      for (const m of me.memberships) await addMembership(em, m.orgId, me.id, m.role, asOf, 'keep');
      return me;
    };
    if (settings === 'current') return inTurn(this.ds, em, `replica-refresh:user:${actor.userId}`, async (em) => write(em, await read()));
    const fetched = await read();
    return em ? write(em, fetched) : this.ds.transaction((em) => write(em, fetched));
  }

  /** The organisation's policy from identity (which checks the caller is a member), kept as `fetchRouting` keeps settings. */
  private async fetchOrgPolicy(actor: Actor, orgId: string, onConflict: 'keep' | 'current' = 'keep', em: EntityManager = this.ds.manager) {
    const fetchAndPut = async (em: EntityManager) => {
      const asOf = new Date().toISOString();
      const { policy } = await this.rpc.call(IdentityRpc.getOrg, { orgId }, { actor: { userId: actor.userId, platformRoles: [] } });
      await putOrgPolicy(em, { orgId, ...policy }, asOf, onConflict);
      return { eu_only: policy.euOnly, allowed_models: policy.allowedModels, blocked_terms: policy.blockedTerms ?? [] };
    };
    return onConflict === 'current' ? inTurn(this.ds, em, `replica-refresh:org:${orgId}`, fetchAndPut) : fetchAndPut(em);
  }
}

/**
 * A `current` refresh (identity read, then written over whatever the row holds) in turn with the others of the
 * same user or organisation, the read made only once the one before has written: two at once (a setting switched
 * off and straight on again) could otherwise write the older read last, dated as the newer, and no event would
 * ever correct it. In the caller's transaction, or one of its own.
 */
async function inTurn<T>(ds: DataSource, em: EntityManager | undefined, name: string, work: (em: EntityManager) => Promise<T>): Promise<T> {
  const locked = async (em: EntityManager) => {
    await lockNamed(em, name);
    return work(em);
  };
  return em?.queryRunner?.isTransactionActive ? locked(em) : ds.transaction(locked);
}

/** identity no longer knows the user or the membership (a 4xx): nothing (undefined) to hold; anything else is thrown (the event comes again). */
async function goneIsNothing<T>(read: Promise<T>): Promise<T | undefined> {
  try {
    return await read;
  } catch (err) {
    if (!(err instanceof ProblemError && err.status < 500)) throw err;
    return undefined;
  }
}

function assertKeyScope(actor: Actor, workspace: string): void {
  if (actor.apiKeyWorkspace && actor.apiKeyWorkspace !== workspace) {
    throw new ProblemError(403, `This API key is scoped to the workspace ${actor.apiKeyWorkspace}`);
  }
}
