import type { PurgeRule } from '@ally/persistence';

/**
 * Business conversations older than their organisation's chatRetentionDays
 * (messages go with them), published outbox rows after the stream's 7 days,
 * and erasure marks after a day (the subject's access tokens lived 15 minutes).
 */
export const CHAT_RETENTION_RULES: PurgeRule[] = [
  {
    name: 'chat-history',
    table: 'conversations',
    expired: `workspace <> 'private' AND updated_at < now() - (SELECT make_interval(days => p.chat_retention_days) FROM org_policies p WHERE p.org_id::text = conversations.workspace)`,
  },
  { name: 'outbox', table: 'outbox', expired: `sent_at < now() - interval '7 days'` },
  { name: 'erased-subjects', table: 'erased_subjects', expired: `erased_at < now() - interval '1 day'` },
];
