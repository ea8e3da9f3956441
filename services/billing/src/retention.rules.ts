import type { PurgeRule } from '@ally/persistence';

/** Contract data 4 years after the contract ended; invoices 10 years; published outbox rows 7 days. */
export const BILLING_RETENTION_RULES: PurgeRule[] = [
  { name: 'contract', table: 'subscriptions', key: 'workspace', expired: `ended_at < now() - interval '4 years'` },
  { name: 'usage-ledger', table: 'ledger', key: 'message_id', expired: `created_at < now() - interval '4 years' AND meter_status <> 'pending'` },
  { name: 'invoices', table: 'invoices', key: 'stripe_invoice_id', expired: `created_at < now() - interval '10 years'` },
  { name: 'processed-webhooks', table: 'processed_webhooks', key: 'event_id', expired: `received_at < now() - interval '90 days'` },
  { name: 'outbox', table: 'outbox', expired: `sent_at < now() - interval '7 days'` },
];
