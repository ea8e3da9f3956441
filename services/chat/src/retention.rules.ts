import { CANDIDATES, notHeld, type PurgeRule } from '@ally/persistence';

/** A conversation's organisation as its key: the organisation tables' indexes then serve (a workspace is `private` or an organisation's id). */
const ORG_OF = (table: string) => `CASE WHEN ${table}.workspace = 'private' THEN NULL ELSE ${table}.workspace::uuid END`;

/**
 * A business conversation past its organisation's chatRetentionDays (messages go with it), or of someone removed
 * from its organisation 30 days ago or more and not a member again (nobody can open it any more, and the order
 * it served has ended; the removal's record is kept until their conversations there are gone). Applied only by
 * privacy's retention runs (the daily CronJob, or compliance), which spare users under a legal hold or a
 * restriction and apply a period compliance sets besides: never by the hourly purge below.
 */
export const ORG_CHAT_HISTORY_EXPIRED = `workspace <> 'private' AND (
  updated_at < now() - (SELECT make_interval(days => p.chat_retention_days) FROM org_policies p WHERE p.org_id = ${ORG_OF('conversations')})
  OR (EXISTS (SELECT 1 FROM membership_removals r WHERE r.org_id = ${ORG_OF('conversations')} AND r.user_id = conversations.user_id AND r.removed_at < now() - interval '30 days')
      AND NOT EXISTS (SELECT 1 FROM memberships m WHERE m.org_id = ${ORG_OF('conversations')} AND m.user_id = conversations.user_id)))`;

/**
 * The messages older than their organisation's chatRetentionDays in business conversations still in use (a
 * conversation past it goes whole, by the rule above): found once per batch from the organisations that set one,
 * their conversations in use, then each one's messages by age (an array of a few batches' ids, which the batch then
 * takes by key; never a held user's, or they could fill it run after run, but those of one restricted in
 * another workspace only; a dry run counts them all), so no batch scans every message, however the planner guesses.
 */
export const ORG_CHAT_MESSAGES_EXPIRED = `id = ANY (ARRAY(
  SELECT old.id FROM org_policies p
    JOIN conversations c ON c.workspace = p.org_id::text AND c.updated_at >= now() - make_interval(days => p.chat_retention_days)
    CROSS JOIN LATERAL (SELECT m.id FROM messages m WHERE m.conversation_id = c.id AND m.created_at < now() - make_interval(days => p.chat_retention_days)) old
   WHERE p.chat_retention_days IS NOT NULL AND ${notHeld('c.user_id', 'c.workspace')}
   LIMIT ${CANDIDATES}))`;

/** When an erasure mark goes (SQL over `erased_subjects`; `least` passes over the account not yet deleted). */
export const ERASURE_MARK_EXPIRES = `least(account_deleted_at + interval '1 day', erased_at + interval '100 days')`;

/**
 * Chat's own housekeeping, hourly (besides the outbox and inbox, MESSAGING_RETENTION_RULES): erasure marks a day
 * after identity deleted the account (its last access token lived 15 minutes; until then the subject may still be
 * signed in), membership tombstones after a day once the former member has no conversation left there, lifted
 * restrictions after 8.
 */
export const CHAT_RETENTION_RULES: PurgeRule[] = [
  // An erasure that never reaches identity (given up after chat's step) leaves the account: its mark goes after
  // the longest a request may take (one month, two more when extended, Art. 12(3) GDPR), with a margin.
  { name: 'erased-subjects', table: 'erased_subjects', key: 'mark', expired: `${ERASURE_MARK_EXPIRES} < now()` },
  // A removal has to outlast the redelivery of the events before it, and the former member's conversations there
  // (the retention run deletes them by it).
  {
    name: 'membership-removals',
    table: 'membership_removals',
    key: 'ctid',
    // As long as a lift (the stream keeps events 7 days): an older member.added redelivered after it would let them back in.
    expired: `removed_at < now() - interval '8 days' AND NOT EXISTS (SELECT 1 FROM conversations c WHERE c.user_id = membership_removals.user_id AND c.workspace = membership_removals.org_id::text)`,
  },
  // A lift only has to outlast the redelivery of its restriction (the stream keeps events 7 days).
  { name: 'lifted-restrictions', table: 'restrictions', key: 'request_id', expired: `lifted_at < now() - interval '8 days'` },
];
