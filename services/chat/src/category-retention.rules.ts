import type { CategoryRetentionRule } from '@ally/persistence';
import { ORG_CHAT_HISTORY_EXPIRED, ORG_CHAT_MESSAGES_EXPIRED } from './retention.rules.js';

/** A conversation goes, its messages with it, once nothing was said in it for the period. */
const CONVERSATIONS: CategoryRetentionRule = {
  category: 'chat-history',
  table: 'conversations',
  since: 'updated_at',
  userColumn: 'user_id',
  workspace: 'workspace',
  ownRule: ORG_CHAT_HISTORY_EXPIRED,
  ownRuleStands: true,
};

/**
 * Chat history follows each organisation's chatRetentionDays, and a period compliance sets besides (whichever
 * ends first): whole conversations, then the older messages of a conversation still in use.
 */
export const CHAT_CATEGORY_RULES: CategoryRetentionRule[] = [
  CONVERSATIONS,
  {
    category: 'chat-history',
    table: 'messages',
    since: 'created_at',
    userColumn: 'user_id',
    workspace: '(SELECT c.workspace FROM conversations c WHERE c.id = messages.conversation_id)',
    ownRule: ORG_CHAT_MESSAGES_EXPIRED,
    ownRuleStands: true,
    within: { rule: CONVERSATIONS, on: 'conversations.id = messages.conversation_id' },
  },
];
