import type { CategoryRetentionRule } from '@ally/persistence';

export const NOTIFY_CATEGORY_RULES: CategoryRetentionRule[] = [
  // A mail about an organisation is that workspace's; the rest are the account's own (its private workspace).
  { category: 'delivery-log', table: 'deliveries', since: 'created_at', userColumn: 'user_id', workspace: `coalesce(org_id::text, 'private')` },
];
