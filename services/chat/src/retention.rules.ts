import type { PurgeRule } from '@ally/persistence';

/**
 * A business conversation past its organisation's chatRetentionDays (messages go with it), or of someone no longer
 * a member of its organisation (they left, were removed, or it was dissolved: nobody can open it any more, and the
 * order it served has ended), a day after its last message (by then the replica has heard of every membership).
 * Applied only by privacy's retention runs (the daily CronJob, or compliance), which spare users under a legal
 * hold or a restriction and apply a period compliance sets besides: never by the hourly purge below.
 */
export const ORG_CHAT_HISTORY_EXPIRED = `workspace <> 'private' AND (
  updated_at < now() - (SELECT make_interval(days => p.chat_retention_days) FROM org_policies p WHERE p.org_id::text = conversations.workspace)
  OR (updated_at < now() - interval '1 day' AND NOT EXISTS (SELECT 1 FROM memberships m WHERE m.org_id::text = conversations.workspace AND m.user_id = conversations.user_id)))`;

/**
 * A message of a business conversation older than its organisation's chatRetentionDays. The first condition, on
 * the shortest period any organisation set, lets Postgres find the candidates by `messages_created_idx`.
 */
export const ORG_CHAT_MESSAGES_EXPIRED = `created_at < now() - (SELECT make_interval(days => min(chat_retention_days)) FROM org_policies)
  AND created_at < now() - (SELECT make_interval(days => p.chat_retention_days) FROM conversations c JOIN org_policies p ON p.org_id::text = c.workspace WHERE c.id = messages.conversation_id)`;

/**
 * Chat's own housekeeping, hourly (besides the outbox and inbox, MESSAGING_RETENTION_RULES): erasure marks a day
 * after identity deleted the account (its last access token lived 15 minutes; until then the subject may still be
 * signed in), membership tombstones after a day, lifted restrictions after 8.
 */
export const CHAT_RETENTION_RULES: PurgeRule[] = [
  // An erasure that never reaches identity (given up after chat's step) leaves the account: its mark goes after
  // the longest a request may take (one month, two more when extended, Art. 12(3) GDPR), with a margin.
  { name: 'erased-subjects', table: 'erased_subjects', key: 'mark', expired: `account_deleted_at < now() - interval '1 day' OR erased_at < now() - interval '100 days'` },
  // A removal only has to outlast the redelivery of the events before it.
  { name: 'membership-removals', table: 'membership_removals', key: 'ctid', expired: `removed_at < now() - interval '1 day'` },
  // A lift only has to outlast the redelivery of its restriction (the stream keeps events 7 days).
  { name: 'lifted-restrictions', table: 'restrictions', key: 'request_id', expired: `lifted_at < now() - interval '8 days'` },
];
