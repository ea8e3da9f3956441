import type { PurgeRule } from '@ally/persistence';

/**
 * The delivery log lives 30 days (contracts: notify `delivery-log`); published
 * outbox rows 7 days; erasure marks as long as the events stream keeps an event
 * that could still name the subject (7 days).
 */
export const NOTIFY_RETENTION_RULES: PurgeRule[] = [
  { name: 'delivery-log', table: 'deliveries', expired: `created_at < now() - interval '30 days'` },
  { name: 'outbox', table: 'outbox', expired: `sent_at < now() - interval '7 days'` },
  { name: 'erased-subjects', table: 'erased_subjects', key: 'mark', expired: `erased_at < now() - interval '7 days'` },
];
