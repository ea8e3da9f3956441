import type { CategoryRetentionRule } from '@ally/persistence';

export const NOTIFY_CATEGORY_RULES: CategoryRetentionRule[] = [
  // A mail about an organisation is that workspace's; the rest are the account's own (its private workspace).
  // A mail is held for its recipient and for whom it is about (an invitation naming its inviter).
  { category: 'delivery-log', table: 'deliveries', since: 'created_at', userColumn: ['user_id', 'about_user_id'], workspace: `coalesce(org_id::text, 'private')` },
];
