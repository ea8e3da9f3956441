import { IDENTITY_EVENT_SECRETS, platformRoleSchema } from '@ally/contracts';
import { MESSAGING_MIGRATIONS } from '@ally/messaging';
import type { ServiceDefinition } from '@ally/platform';
import { ApiKeyEntity } from './api-keys/api-key.entity.js';
import { OneTimeTokenEntity } from './auth/one-time-token.entity.js';
import { identityConfigSchema, type IdentityConfig } from './config.js';
import { IdentityModule } from './identity.module.js';
import { InitialSchema1764100000000 } from './migrations/1764100000000-initial-schema.js';
import { OrgBlockedTerms1764300000000 } from './migrations/1764300000000-org-blocked-terms.js';
import { Objections1764800000000 } from './migrations/1764800000000-objections.js';
import { PendingObjections1765600000000 } from './migrations/1765600000000-pending-objections.js';
import { Restrictions1766000000000 } from './migrations/1766000000000-restrictions.js';
import { SessionEndNotify1766200000000 } from './migrations/1766200000000-session-end-notify.js';
import { PasswordProven1767000000000 } from './migrations/1767000000000-password-proven.js';
import { InvitationsSent1767100000000 } from './migrations/1767100000000-invitations-sent.js';
import { LoginAuditNetwork1767200000000 } from './migrations/1767200000000-login-audit-network.js';
import { LoginAuditByUser1767300000000 } from './migrations/1767300000000-login-audit-by-user.js';
import { EmailChanges1767400000000 } from './migrations/1767400000000-email-changes.js';
import { SealedSigningKeys1765100000000 } from './migrations/1765100000000-sealed-signing-keys.js';
import { InvitationEntity } from './orgs/invitation.entity.js';
import { MembershipEntity } from './orgs/membership.entity.js';
import { OrganizationEntity } from './orgs/organization.entity.js';
import { PlatformRolesService } from './platform-roles/platform-roles.service.js';
import { LoginAuditEntity } from './sessions/login-audit.entity.js';
import { RefreshTokenEntity } from './sessions/refresh-token.entity.js';
import { SessionEntity } from './sessions/session.entity.js';
import { SigningKeyEntity } from './signing-keys/signing-key.entity.js';
import { SigningKeysService } from './signing-keys/signing-keys.service.js';
import { SsoIdentityEntity } from './sso/sso-identity.entity.js';
import { SsoStateEntity } from './sso/sso-state.entity.js';
import { UserEntity } from './users/user.entity.js';
import { LowerCaseWorkspaces1765400000000 } from './migrations/1765400000000-lower-case-workspaces.js';

const roleCommand =
  (action: 'grant' | 'revoke') =>
  async (app: { get<T>(t: new (...a: any[]) => T): T }, args: string[]): Promise<string> => {
    const [email, role, ...extra] = args;
    const parsed = platformRoleSchema.safeParse(role);
    // A word too many may be a mistyped second role: nothing is granted or revoked on a guess.
    if (!email || !parsed.success || extra.length) throw new Error(`usage: ${action}-role <email> <compliance|admin>${extra.length ? ` (unexpected ${extra[0]})` : ''}`);
    const roles = await app.get(PlatformRolesService)[action](email, parsed.data);
    return `${email}: platform roles now [${roles.join(', ')}]`;
  };

/** identity: accounts, sessions, organisations, API keys, SSO. */
export const identityService: ServiceDefinition<IdentityConfig> = {
  name: 'identity',
  configSchema: identityConfigSchema,
  database: {
    schema: 'identity',
    outboxSecrets: IDENTITY_EVENT_SECRETS,
    entities: [
      UserEntity,
      OneTimeTokenEntity,
      SessionEntity,
      RefreshTokenEntity,
      LoginAuditEntity,
      OrganizationEntity,
      MembershipEntity,
      InvitationEntity,
      ApiKeyEntity,
      SsoIdentityEntity,
      SsoStateEntity,
      SigningKeyEntity,
    ],
    migrations: [InitialSchema1764100000000, OrgBlockedTerms1764300000000, Objections1764800000000, SealedSigningKeys1765100000000, LowerCaseWorkspaces1765400000000, PendingObjections1765600000000, Restrictions1766000000000, SessionEndNotify1766200000000, ...MESSAGING_MIGRATIONS, PasswordProven1767000000000, InvitationsSent1767100000000, LoginAuditNetwork1767200000000, LoginAuditByUser1767300000000, EmailChanges1767400000000],
  },
  module: (ctx) => IdentityModule.forRoot(ctx),
  commands: {
    'grant-role': roleCommand('grant'),
    'revoke-role': roleCommand('revoke'),
    'rotate-signing-key': async (app, args) => {
      const unknown = args.filter((a) => a !== '--withdraw-old');
      if (unknown.length) throw new Error(`usage: rotate-signing-key [--withdraw-old] (unknown option ${unknown[0]})`);
      const withdraw = args.includes('--withdraw-old');
      const keys = app.get(SigningKeysService);
      await keys.rotate(true, withdraw);
      const kid = keys.jwks().keys[0]?.kid;
      // Running replicas hear of it at commit and tell the gateways; one that missed it reloads within a minute.
      return withdraw
        ? `new signing key ${kid}; every older key is withdrawn: no replica signs with them, and tokens they signed stop verifying within a second (a replica or gateway that missed the word: within its next reload, about two minutes at most); clients refresh them`
        : `new signing key ${kid}; published now, it signs tokens once every replica and gateway knows it (SIGNING_KEY_PUBLISH_AHEAD_SECONDS), older keys stay published until their tokens expire`;
    },
  },
};
