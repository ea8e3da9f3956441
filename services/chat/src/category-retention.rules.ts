import type { CategoryRetentionRule } from '@ally/persistence';
import { ORG_CHAT_HISTORY_EXPIRED } from './retention.rules.js';

/** Chat history follows each organisation's chatRetentionDays, and a period compliance sets besides (whichever ends first). */
export const CHAT_CATEGORY_RULES: CategoryRetentionRule[] = [
  { category: 'chat-history', table: 'conversations', since: 'updated_at', userColumn: 'user_id', workspace: 'workspace', ownRule: ORG_CHAT_HISTORY_EXPIRED, ownRuleStands: true },
];
