import type { CategoryRetentionRule } from '@ally/persistence';

/** Contract data 4 years after it ended, the ledger 4 years, invoices 10 years (periods from privacy's policy). */
export const BILLING_CATEGORY_RULES: CategoryRetentionRule[] = [
  { category: 'contract', table: 'subscriptions', key: 'workspace', since: 'ended_at', where: 'ended_at IS NOT NULL' },
  { category: 'usage-ledger', table: 'ledger', key: 'message_id', since: 'created_at', where: "meter_status <> 'pending'", userColumn: 'user_id' },
  { category: 'invoices', table: 'invoices', key: 'stripe_invoice_id', since: 'created_at' },
];
