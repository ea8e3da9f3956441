import type { CategoryRetentionRule } from '@ally/persistence';
import type { IdentityConfig } from '../config.js';

/**
 * How identity purges each declared data category when privacy's retention run asks.
 * A session ends at the first of its revocation, its absolute expiry and `idleSeconds`
 * after its last use (then it is refused, though nothing marks it revoked).
 */
export const identityCategoryRules = ({ SESSION_IDLE_TTL_SECONDS: idleSeconds }: Pick<IdentityConfig, 'SESSION_IDLE_TTL_SECONDS'>): CategoryRetentionRule[] => [
  // The account's, not a workspace's: only a hold of the whole account keeps them past their period.
  {
    category: 'sessions',
    table: 'sessions',
    since: `least(revoked_at, absolute_expires_at, last_used_at + make_interval(secs => ${Math.trunc(idleSeconds)}))`,
    userColumn: 'user_id',
    workspace: null,
  },
  { category: 'login-audit', table: 'login_audit', since: 'occurred_at', userColumn: 'user_id', workspace: null },
  // Live keys stay while the account does (the category has no period); revoked ones go 30 days after their revocation.
  // A period compliance sets may shorten the 30 days, not lengthen them (the privacy policy's promise): the rule stands beside it.
  {
    category: 'api-keys',
    table: 'api_keys',
    since: 'revoked_at',
    where: 'revoked_at IS NOT NULL',
    userColumn: 'user_id',
    workspace: 'workspace',
    ownRule: `revoked_at < now() - interval '30 days'`,
    ownRuleStands: true,
  },
  // An invitation names who invited and who was invited (an account with that address, if any): a hold of either keeps it.
  {
    category: 'memberships',
    table: 'invitations',
    since: 'coalesce(accepted_at, expires_at)',
    userColumn: ['invited_by', '(SELECT u.id FROM users u WHERE lower(u.email) = lower(invitations.email))'],
    workspace: 'org_id',
    ownRule: `coalesce(accepted_at, expires_at) < now() - interval '30 days'`,
  },
];
