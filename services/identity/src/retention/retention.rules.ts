import type { PurgeRule } from '@ally/persistence';

/**
 * What identity deletes on its own, by age (ARCHITECTURE.md, retention
 * defaults): the login audit after 30 days, ended sessions 30 days after they
 * ended, used or expired one-time tokens, invitations and SSO states, API
 * keys 30 days after their revocation, and
 * published outbox rows after the stream's 7 days.
 */
export const IDENTITY_RETENTION_RULES: PurgeRule[] = [
  { name: 'login-audit', table: 'login_audit', expired: `occurred_at < now() - interval '30 days'` },
  { name: 'sessions', table: 'sessions', expired: `coalesce(revoked_at, absolute_expires_at) < now() - interval '30 days'` },
  { name: 'one-time-tokens', table: 'one_time_tokens', key: 'token_hash', expired: `coalesce(used_at, expires_at) < now() - interval '1 day'` },
  { name: 'invitations', table: 'invitations', expired: `coalesce(accepted_at, expires_at) < now() - interval '30 days'` },
  // The api-keys category's rule: revoked keys go 30 days after their revocation.
  { name: 'revoked-api-keys', table: 'api_keys', expired: `revoked_at < now() - interval '30 days'` },
  { name: 'sso-states', table: 'sso_states', key: 'state', expired: `expires_at < now()` },
  { name: 'outbox', table: 'outbox', expired: `sent_at < now() - interval '7 days'` },
];
