import type { PurgeRule } from '@ally/persistence';

/**
 * notify's own housekeeping, hourly (besides the outbox and inbox, MESSAGING_RETENTION_RULES):
 * erasure marks as long as the events stream keeps an event that could still
 * name the subject (7 days). The delivery log (a declared category, 30 days)
 * goes only in privacy's retention runs, which spare held users.
 */
export const NOTIFY_RETENTION_RULES: PurgeRule[] = [
  { name: 'erased-subjects', table: 'erased_subjects', key: 'mark', expired: `erased_at < now() - interval '7 days'` },
];
