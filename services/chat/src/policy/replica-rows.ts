import type { EntityManager } from 'typeorm';
import { lockNamed } from '@ally/persistence';

/**
 * Chat's replica rows of identity's state (restrictToEu, organisation
 * policies, memberships), each dated, written by identity's events and by
 * chat's own reads from identity.
 */

/**
 * How a replica row as of `at` meets the one already there: `update` (an event) replaces an older one;
 * `keep` (what chat fetched for a user or organisation it had not seen) only fills a gap; `current`
 * (identity's answer right after a change, read after it committed) replaces whatever is there, keeping
 * the later time, so an event of a clock running ahead that arrives afterwards cannot undo it.
 */
type OnConflict = 'update' | 'keep' | 'current';

/** The ON CONFLICT action for a replica row of `table` whose `columns` come from the row as of `updated_at`. */
function onConflictDo(table: string, columns: string[], onConflict: OnConflict): string {
  if (onConflict === 'keep') return 'NOTHING';
  const set = columns.map((c) => `${c} = EXCLUDED.${c}`).join(', ');
  return onConflict === 'current'
    ? `UPDATE SET ${set}, updated_at = GREATEST(${table}.updated_at, EXCLUDED.updated_at)`
    : `UPDATE SET ${set}, updated_at = EXCLUDED.updated_at WHERE ${table}.updated_at < EXCLUDED.updated_at`;
}

/** Whether the row took the values (false: one as of a later time was there, or `keep` found one). */
export async function putUserSettings(em: Pick<EntityManager, 'query'>, userId: string, restrictToEu: boolean, at: string, onConflict: OnConflict): Promise<boolean> {
  const rows: unknown[] = await em.query(
    `INSERT INTO user_settings (user_id, restrict_to_eu, updated_at) VALUES ($1, $2, $3)
     ON CONFLICT (user_id) DO ${onConflictDo('user_settings', ['restrict_to_eu'], onConflict)} RETURNING 1`,
    [userId, restrictToEu, at],
  );
  return rows.length > 0;
}

/** Whether the row holds another setting than `restrictToEu` (after a put that did not take: a later row was there). */
export async function userSettingsDiffer(em: Pick<EntityManager, 'query'>, userId: string, restrictToEu: boolean): Promise<boolean> {
  const [row] = await em.query(`SELECT restrict_to_eu IS DISTINCT FROM $2 AS differs FROM user_settings WHERE user_id = $1`, [userId, restrictToEu]);
  return row?.differs === true;
}

export interface OrgPolicyRow {
  orgId: string;
  euOnly: boolean;
  allowedModels: string[] | null;
  chatRetentionDays: number | null;
  blockedTerms?: string[];
}

/** Whether the row took the values, as for `putUserSettings`. */
export async function putOrgPolicy(em: Pick<EntityManager, 'query'>, p: OrgPolicyRow, at: string, onConflict: OnConflict): Promise<boolean> {
  const rows: unknown[] = await em.query(
    `INSERT INTO org_policies (org_id, eu_only, allowed_models, chat_retention_days, blocked_terms, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (org_id) DO ${onConflictDo('org_policies', ['eu_only', 'allowed_models', 'chat_retention_days', 'blocked_terms'], onConflict)} RETURNING 1`,
    [p.orgId, p.euOnly, p.allowedModels, p.chatRetentionDays, p.blockedTerms ?? [], at],
  );
  return rows.length > 0;
}

/** Whether the row holds another policy than `p`, as `userSettingsDiffer`. */
export async function orgPolicyDiffers(em: Pick<EntityManager, 'query'>, p: OrgPolicyRow): Promise<boolean> {
  const [row] = await em.query(
    `SELECT (eu_only, allowed_models, chat_retention_days, blocked_terms) IS DISTINCT FROM ($2::boolean, $3::text[], $4::int, $5::text[]) AS differs FROM org_policies WHERE org_id = $1`,
    [p.orgId, p.euOnly, p.allowedModels, p.chatRetentionDays, p.blockedTerms ?? []],
  );
  return row?.differs === true;
}

/**
 * One membership's events in turn, whichever replica applies them: a removal's
 * DELETE cannot see an addition not yet committed, nor the addition's check
 * the removal's marker, so applied at once the two left a removed member in.
 */
const lockMembership = (em: Pick<EntityManager, 'query'>, orgId: string, userId: string) => lockNamed(em, `chat-membership:${orgId}:${userId}`);

/**
 * A membership ended as of `at`: the row goes unless it is newer (a later
 * re-invitation), and the removal is remembered so an older "added" arriving
 * late does not bring it back. True when a newer row stayed (the caller asks identity what holds).
 */
export async function removeMembership(em: Pick<EntityManager, 'query'>, orgId: string, userId: string, at: string): Promise<boolean> {
  await lockMembership(em, orgId, userId);
  await em.query(`DELETE FROM memberships WHERE org_id = $1 AND user_id = $2 AND updated_at <= $3`, [orgId, userId, at]);
  const stayed = (await em.query(`SELECT 1 FROM memberships WHERE org_id = $1 AND user_id = $2`, [orgId, userId])).length > 0;
  await em.query(
    `INSERT INTO membership_removals (org_id, user_id, removed_at) VALUES ($1, $2, $3)
     ON CONFLICT (org_id, user_id) DO UPDATE SET removed_at = GREATEST(membership_removals.removed_at, EXCLUDED.removed_at)`,
    [orgId, userId, at],
  );
  return stayed;
}

/**
 * A membership as of `at`, unless it was removed at or after that time (an update: the newer role wins).
 */
export async function addMembership(em: Pick<EntityManager, 'query'>, orgId: string, userId: string, role: string, at: string, onConflict: OnConflict): Promise<unknown> {
  await lockMembership(em, orgId, userId);
  return em.query(
    `INSERT INTO memberships (org_id, user_id, role, updated_at)
     SELECT $1::uuid, $2::uuid, $3::text, $4::timestamptz WHERE NOT EXISTS (SELECT 1 FROM membership_removals WHERE org_id = $1::uuid AND user_id = $2::uuid AND removed_at >= $4::timestamptz)
     ON CONFLICT (org_id, user_id) DO ${onConflictDo('memberships', ['role'], onConflict)}`,
    [orgId, userId, role, at],
  );
}
