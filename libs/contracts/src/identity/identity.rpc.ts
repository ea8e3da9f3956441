import { z } from 'zod';
import { rpc } from '../common/rpc.js';
import { WORKSPACE_KEY } from '../common/validation.js';
import * as s from './identity.schemas.js';
import { pageOf } from '../common/replies.js';
import * as r from './identity.replies.js';

const none = z.strictObject({});

/**
 * Core NATS, every gateway (no queue group): sessions that just ended, so their
 * access tokens are refused at once rather than at the gateway's next check.
 * Nothing is kept: a gateway that misses one still asks identity within
 * `SESSION_CHECK_SECONDS`.
 */
export const SESSIONS_ENDED_SUBJECT = 'ally.identity.sessions.ended';
export type SessionsEnded = { sessionIds: string[] };

/**
 * Broadcast by every identity replica once it has loaded a changed set of signing keys (a rotation, a
 * withdrawal): gateways fetch the JWKS anew instead of at their next `JWKS_REFRESH_SECONDS`. Carries nothing.
 */
export const SIGNING_KEYS_CHANGED_SUBJECT = 'ally.identity.signing-keys.changed';

/** Every RPC identity answers; subjects are `ally.rpc.identity.<entity>.<verb>`. */
export const IdentityRpc = {
  register: rpc(r.registerReply)('ally.rpc.identity.user.register', s.registerInput, { authenticated: false }),
  verifyEmail: rpc<void>()('ally.rpc.identity.email.verify', s.verifyEmailInput, { authenticated: false }),
  login: rpc(r.tokenPairReply)('ally.rpc.identity.session.login', s.loginInput, { authenticated: false }),
  refresh: rpc(r.tokenPairReply)('ally.rpc.identity.session.refresh', s.refreshInput, { authenticated: false }),
  /** Whether the session an access token names still runs (not logged out, reset, revoked or expired): the gateway asks. */
  checkSession: rpc<{ live: boolean }>()('ally.rpc.identity.session.check', s.sessionCheckInput, { authenticated: false }),
  logout: rpc<void>()('ally.rpc.identity.session.logout', s.logoutInput, { authenticated: false }),
  forgotPassword: rpc<void>()('ally.rpc.identity.password.forgot', s.forgotPasswordInput, { authenticated: false }),
  resetPassword: rpc<void>()('ally.rpc.identity.password.reset', s.resetPasswordInput, { authenticated: false }),
  /** Internal (notify): whom to mail about a billing workspace — an organisation's owners, or the user of `private:<id>`. */
  contacts: rpc<{ contacts: r.Contact[]; /** The organisation's name, for an organisation. */ organisation?: string }>()(
    'ally.rpc.identity.contact.list',
    z.strictObject({ workspace: z.string().regex(WORKSPACE_KEY, 'must be an organisation id or private:<user id>') }),
    { authenticated: false },
  ),
  jwks: rpc(r.jwksReply)('ally.rpc.identity.jwks.get', none, { authenticated: false }),
  verifyApiKey: rpc<r.ApiKeyIdentity>()('ally.rpc.identity.apikey.verify', s.apiKeyVerifyInput, { authenticated: false }),
  ssoStart: rpc<r.SsoStart>()('ally.rpc.identity.sso.start', s.ssoStartInput, { authenticated: false }),
  ssoCallback: rpc(r.tokenPairReply)('ally.rpc.identity.sso.callback', s.ssoCallbackInput, { authenticated: false }),

  getMe: rpc(r.meReply)('ally.rpc.identity.me.get', none),
  /** Internal (chat): the caller's restrictToEu and memberships, for routing; the rest of `getMe` chat has no use for. */
  getRouting: rpc(r.routingReply)('ally.rpc.identity.routing.get', none),
  /** The caller's platform roles as they stand now (a token names those it was signed with): the gateway asks before an operator's action. */
  platformRoles: rpc<{ platformRoles: s.PlatformRole[] }>()('ally.rpc.identity.roles.get', none),
  updateMe: rpc(r.meReply)('ally.rpc.identity.me.update', s.updateMeInput),
  updateSettings: rpc(r.settingsReply)('ally.rpc.identity.settings.update', s.updateSettingsInput),
  changeEmail: rpc(r.emailChangeReply)('ally.rpc.identity.me.email.change', s.changeEmailInput),
  createApiKey: rpc(r.apiKeyCreatedReply)('ally.rpc.identity.apikey.create', s.createApiKeyInput),
  listApiKeys: rpc(pageOf(r.apiKeySummaryReply))('ally.rpc.identity.apikey.list', s.listApiKeysInput),
  revokeApiKey: rpc<void>()('ally.rpc.identity.apikey.revoke', s.idInput),

  createOrg: rpc(r.organizationReply)('ally.rpc.identity.org.create', s.createOrgInput),
  getOrg: rpc(r.organizationReply)('ally.rpc.identity.org.get', s.orgIdInput),
  listMembers: rpc(pageOf(r.memberReply))('ally.rpc.identity.member.list', s.listMembersInput),
  removeMember: rpc<void>()('ally.rpc.identity.member.remove', s.removeMemberInput),
  createInvitation: rpc(r.invitationReply)('ally.rpc.identity.invitation.create', s.createInvitationInput),
  acceptInvitation: rpc(r.membershipReply)('ally.rpc.identity.invitation.accept', s.acceptInvitationInput),
  listInvitations: rpc(pageOf(r.pendingInvitationReply))('ally.rpc.identity.invitation.list', s.listInvitationsInput),
  revokeInvitation: rpc<null>()('ally.rpc.identity.invitation.revoke', s.revokeInvitationInput),
  updateOrgPolicy: rpc(r.orgPolicyReply)('ally.rpc.identity.org.policy.update', s.updateOrgPolicyInput),
} as const;
