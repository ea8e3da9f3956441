import type { PurgeRule } from '@ally/persistence';

/**
 * Which of privacy's requests and legal holds a retention run deletes, as SQL
 * over `requests` / `legal_holds` with the placeholders given: shared by the
 * run that deletes them and by a dry run of the audit trail, whose entries of
 * a request or hold stay only as long as it does. A request's period counts
 * from the last thing that happened to it: a restriction completes when the
 * services paused, years before its lift is decided and takes effect.
 */
export const requestsPast = (days: string, held: string): string =>
  `status IN ('completed', 'failed') AND greatest(coalesce(completed_at, updated_at), decided_at, took_effect_at) < now() - make_interval(days => ${days}) AND (user_id IS NULL OR NOT (user_id = ANY(${held}::uuid[])))`;

/** Only released holds, counted from their release: an active one is what keeps the held user's data. */
export const releasedHoldsPast = (days: string): string => `released_at IS NOT NULL AND released_at < now() - make_interval(days => ${days})`;

/**
 * privacy's housekeeping, hourly (besides the outbox and inbox): a retention run's record (who started it, what it
 * deleted) goes 3 years after it finished, as the audit trail's entries about it do. Requests, holds, tombstones
 * and the trail itself are declared categories: they go in the runs.
 */
export const PRIVACY_RETENTION_RULES: PurgeRule[] = [{ name: 'retention-runs', table: 'retention_runs', key: 'id', expired: `finished_at < now() - interval '3 years'` }];
