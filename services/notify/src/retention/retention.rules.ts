import type { PurgeRule } from '@ally/persistence';

/**
 * notify's own housekeeping, hourly (besides the outbox and inbox, MESSAGING_RETENTION_RULES):
 * erasure marks after 45 days, lifted restrictions and rejected objections after 8. A mark keeps mail from the subject while the
 * events stream may still hold one naming them (7 days), and while their
 * erasure may still be running (identity's step last, a month to the due date)
 * or notify's step be tried again: gone earlier, the farewell mail went out a
 * second time and a late event mailed the subject again. The delivery log (a
 * declared category, 30 days) goes only in privacy's retention runs, which
 * spare held users.
 */
export const NOTIFY_RETENTION_RULES: PurgeRule[] = [
  { name: 'erased-subjects', table: 'erased_subjects', key: 'mark', expired: `erased_at < now() - interval '45 days'` },
  // A lifted pause only has to outlast the redelivery of the event that made it (the stream keeps events 7 days).
  { name: 'lifted-restrictions', table: 'restrictions', key: 'request_id', expired: `lifted_at < now() - interval '8 days'` },
];
