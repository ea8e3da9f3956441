import type { PurgeRule } from '@ally/persistence';

/**
 * identity's own housekeeping, hourly (besides the outbox and inbox,
 * MESSAGING_RETENTION_RULES): used or expired one-time tokens, SSO states, and
 * the day's record of invitations sent (MAX_INVITATIONS_PER_DAY). Its
 * declared data categories (sessions, login audit, revoked API keys,
 * invitations) go only in privacy's retention runs (category-retention.rules.ts),
 * which follow compliance's periods and spare users under a legal hold.
 */
export const IDENTITY_RETENTION_RULES: PurgeRule[] = [
  { name: 'one-time-tokens', table: 'one_time_tokens', key: 'token_hash', expired: `coalesce(used_at, expires_at) < now() - interval '1 day'` },
  { name: 'sso-states', table: 'sso_states', key: 'state', expired: `expires_at < now()` },
  { name: 'invitations-sent', table: 'invitations_sent', key: 'ctid', expired: `sent_at < now() - interval '1 day'` },
];
