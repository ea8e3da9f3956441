import type { PurgeRule } from '@ally/persistence';

/**
 * billing's own housekeeping, hourly (besides the outbox and inbox, MESSAGING_RETENTION_RULES):
 * processed webhook ids after 90 days, a month's quota once the ledger of that
 * month is gone (4 years), which alerts a month raised once it is over (they
 * only keep an alert from repeating), erasure marks after 30 days (they only
 * bridge the time until identity, the saga's last step, deletes the account,
 * which a data-subject request must see done within the month), marks of one
 * workspace's erasure after 8. Contract data (4 years after the contract
 * ended), the usage ledger (4 years) and invoices (10 years) are declared
 * categories: they go only in privacy's retention runs, which follow
 * compliance's periods and spare held users.
 */
export const BILLING_RETENTION_RULES: PurgeRule[] = [
  { name: 'processed-webhooks', table: 'processed_webhooks', key: 'event_id', expired: `received_at < now() - interval '90 days'` },
  { name: 'quota-alerts', table: 'quota_alerts', key: 'ctid', expired: `period < to_char(now() - interval '2 months', 'YYYY-MM')` },
  { name: 'erased-subjects', table: 'erased_subjects', key: 'alias', expired: `erased_at < now() - interval '30 days'` },
  // A workspace's erasure only has to outlast the usage events from before it (the stream keeps them 7 days).
  { name: 'erased-workspaces', table: 'erased_workspaces', key: 'ctid', expired: `erased_at < now() - interval '8 days'` },
  { name: 'period-quotas', table: 'period_quotas', key: 'ctid', expired: `period < to_char(now() - interval '4 years', 'YYYY-MM')` },
];
