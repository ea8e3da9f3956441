import type { CategoryRetentionRule } from '@ally/persistence';

export const NOTIFY_CATEGORY_RULES: CategoryRetentionRule[] = [{ category: 'delivery-log', table: 'deliveries', since: 'created_at', userColumn: 'user_id' }];
