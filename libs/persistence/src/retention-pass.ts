import type { DataSource } from 'typeorm';
import { deleteInBatches } from './purge.js';

/**
 * How a service purges one data category when privacy's retention run asks
 * (`ally.rpc.<svc>.privacy.retention`): the period comes from the policy in
 * force, not from the rule, so compliance can change it.
 */
export interface CategoryRetentionRule {
  /** The data category as declared in contracts (e.g. `login-audit`). */
  category: string;
  table: string;
  /** Primary key column (default `id`). */
  key?: string;
  /** The timestamp the period counts from (`created_at`, `ended_at`…). */
  since: string;
  /** More conditions a row must meet to go (e.g. `meter_status <> 'pending'`). */
  where?: string;
  /**
   * Column (or SQL expression) holding the user id: rows of held users never go. Several when a row names
   * several people (an invitation: who invited, who was invited): a hold of any of them keeps it. Leave out
   * for tables without one.
   */
  userColumn?: string | string[];
  /**
   * SQL for the workspace a row belongs to, in a request's scope terms (`private` or an organisation id): a user
   * restricted in some workspaces only (`heldScopes`) then keeps only those workspaces' rows. `null`: the rows
   * belong to the account, not to a workspace (sessions, login audit), and only a hold of the whole account keeps
   * them. Left out, the rule cannot tell, and any hold of the user keeps all their rows.
   */
  workspace?: string | null;
  /**
   * When the policy has no period (null): the service's own condition for expired rows (e.g. per-organisation chat
   * retention). A rule that picks its candidates in a subquery of its own keeps held users' rows out of it with
   * `notHeld` (they must not fill it).
   */
  ownRule?: string;
  /** `ownRule` holds beside a period compliance set, not instead of it: an organisation's shorter chat retention still deletes. */
  ownRuleStands?: boolean;
  /**
   * Rows that go with a row of another rule of the category when that row goes (a message with its
   * conversation): `on` matches this rule's row to that rule's, each by its table's name. Those rows are left to
   * that rule, so every row is counted once, by a dry run too; this rule takes the rest (old messages of a
   * conversation still in use). Give the rules in that order.
   */
  within?: { rule: CategoryRetentionRule; on: string };
}

const HELD_EVERYWHERE = ':held_everywhere';
const HELD_PAIR_USERS = ':held_pair_users';
const HELD_PAIR_SCOPES = ':held_pair_scopes';

/**
 * In a rule's `ownRule`: SQL that is true when a row of `user` in `workspace` (SQL expressions) is nobody's under
 * a hold: not of a user held everywhere, nor of one restricted in that workspace (their other workspaces' rows go).
 */
export const notHeld = (user: string, workspace: string): string =>
  `(NOT ((${user})::text = ANY(${HELD_EVERYWHERE})) AND NOT EXISTS (SELECT 1 FROM unnest(${HELD_PAIR_USERS}, ${HELD_PAIR_SCOPES}) AS held(held_user, held_scope)
     WHERE held.held_user = (${user})::text AND held.held_scope = (${workspace})::text))`;
/**
 * In a rule's `ownRule`, after LIMIT: how many candidates its own subquery picks, all of them in a dry run (which
 * counts them) and `CANDIDATES_PER_BATCH` in a real one (a batch takes at most `batch` of them by key).
 */
export const CANDIDATES = ':candidates';
const CANDIDATES_PER_BATCH = 5000;

export interface RetentionPassInput {
  categories: { category: string; retentionDays: number | null }[];
  dryRun: boolean;
  /** Users under a legal hold or a restriction of any scope. */
  heldUserIds: string[];
  /** Users of `heldUserIds` held only in these workspaces (a restriction of one workspace); the others are held everywhere. */
  heldScopes?: HeldScope[];
  /** No batch is started after this time: the caller stops waiting soon after, and must hear what went. */
  stopBy?: string;
  /** The moment periods count back from (default: each statement's now()); one for a run that reads the same rows twice. */
  asOf?: string;
}

export interface HeldScope {
  userId: string;
  /** `private` or an organisation id. */
  scope: string;
}

/**
 * The rows of `rule` past the period (or, without one, its own rule), never a
 * held user's: a WHERE clause and its parameters; undefined when nothing of
 * the rule applies. What `retentionPass` deletes, for a service that must act
 * on those rows elsewhere first (a processor's copy). Without `heldScopes`
 * every held user keeps all their rows (never fewer than a hold protects).
 */
export function retentionCondition(
  rule: CategoryRetentionRule,
  retentionDays: number | null,
  heldUserIds: string[],
  asOf?: string,
  heldScopes: HeldScope[] = [],
  dryRun = false,
): { where: string; params: unknown[] } | undefined {
  const params: unknown[] = [];
  const where = conditionInto(params, rule, retentionDays, heldUserIds, asOf, heldScopes, dryRun);
  return where === undefined ? undefined : { where, params };
}

/** `retentionCondition`'s clause, its parameters appended to `params` (a rule `within` another nests that one's). */
function conditionInto(
  params: unknown[],
  rule: CategoryRetentionRule,
  retentionDays: number | null,
  heldUserIds: string[],
  asOf: string | undefined,
  heldScopes: HeldScope[],
  dryRun: boolean,
): string | undefined {
  const conditions: string[] = [];
  const partly = new Set(heldScopes.map((h) => h.userId));
  const heldEverywhere = heldUserIds.filter((u) => !partly.has(u));
  let ownRule = rule.ownRule?.replaceAll(CANDIDATES, dryRun ? 'ALL' : String(CANDIDATES_PER_BATCH));
  if (ownRule?.includes(HELD_EVERYWHERE)) {
    ownRule = ownRule
      .replaceAll(HELD_EVERYWHERE, `$${params.push(heldEverywhere)}::text[]`)
      .replaceAll(HELD_PAIR_USERS, `$${params.push(heldScopes.map((h) => h.userId))}::text[]`)
      .replaceAll(HELD_PAIR_SCOPES, `$${params.push(heldScopes.map((h) => h.scope))}::text[]`);
  }
  if (retentionDays !== null) {
    params.push(retentionDays);
    const days = params.length;
    const now = asOf === undefined ? 'now()' : `$${params.push(asOf)}::timestamptz`;
    const period = `${rule.since} < ${now} - make_interval(days => $${days})`;
    conditions.push(ownRule && rule.ownRuleStands ? `(${period} OR (${ownRule}))` : period);
  } else if (ownRule) {
    conditions.push(`(${ownRule})`);
  } else {
    return undefined;
  }
  if (rule.where) conditions.push(`(${rule.where})`);
  // Only a rule that knows a row's workspace can spare the workspaces a scoped restriction leaves free.
  const scoped = rule.workspace ? heldScopes : [];
  const everywhere = rule.workspace === undefined ? [...new Set([...heldUserIds, ...partly])] : heldEverywhere;
  const userColumns = rule.userColumn === undefined ? [] : [rule.userColumn].flat();
  if (userColumns.length && everywhere.length) {
    const held = params.push(everywhere);
    for (const column of userColumns) conditions.push(`(${column} IS NULL OR NOT (${column}::text = ANY($${held}::text[])))`);
  }
  if (userColumns.length && scoped.length) {
    const users = params.push(scoped.map((h) => h.userId));
    const scopes = params.push(scoped.map((h) => h.scope));
    for (const column of userColumns) {
      conditions.push(
        // The pairs' columns have names no table uses: `user_id` here would be the pair's own, and match every row.
        `NOT EXISTS (SELECT 1 FROM unnest($${users}::text[], $${scopes}::text[]) AS held(held_user, held_scope) WHERE held.held_user = (${column})::text AND held.held_scope = (${rule.workspace})::text)`,
      );
    }
  }
  if (rule.within) {
    const { rule: outer, on } = rule.within;
    const goesWithOuter = conditionInto(params, outer, retentionDays, heldUserIds, asOf, heldScopes, dryRun);
    if (goesWithOuter) conditions.push(`NOT EXISTS (SELECT 1 FROM ${outer.table} WHERE ${on} AND ${goesWithOuter})`);
  }
  return conditions.join(' AND ');
}

/**
 * Counts (dry run) or deletes what is past its period, per requested
 * category, in batches with SKIP LOCKED so live tables never wait long, and
 * never a row of a held user. Categories the service has no rule for are
 * reported with 0.
 */
export async function retentionPass(
  ds: DataSource,
  rules: readonly CategoryRetentionRule[],
  input: RetentionPassInput,
  batch = 1000,
): Promise<{ category: string; affected: number; complete?: boolean }[]> {
  const results: { category: string; affected: number; complete?: boolean }[] = [];
  const stopBy = input.stopBy ? Date.parse(input.stopBy) : Infinity;
  for (const { category, retentionDays } of input.categories) {
    let affected = 0;
    let complete = true;
    for (const rule of rules.filter((r) => r.category === category)) {
      const condition = retentionCondition(rule, retentionDays, input.heldUserIds, input.asOf, input.heldScopes, input.dryRun);
      if (!condition) continue;
      const done = await deleteInBatches(ds, { table: rule.table, key: rule.key, where: condition.where, params: condition.params, batch, stopBy, dryRun: input.dryRun });
      affected += done.affected;
      if (!done.complete) complete = false;
    }
    results.push(complete ? { category, affected } : { category, affected, complete });
  }
  return results;
}
