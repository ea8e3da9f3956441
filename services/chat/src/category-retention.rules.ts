import type { CategoryRetentionRule } from '@ally/persistence';
import { CHAT_RETENTION_RULES } from './retention.rules.js';

/** Chat history follows each organisation's chatRetentionDays unless compliance sets a period. */
export const CHAT_CATEGORY_RULES: CategoryRetentionRule[] = [
  { category: 'chat-history', table: 'conversations', since: 'updated_at', userColumn: 'user_id', ownRule: CHAT_RETENTION_RULES[0].expired },
];
