import { z } from 'zod';
import { replyTime as time } from '../common/replies.js';
import { localeSchema, orgRoleSchema, type Locale } from './identity.schemas.js';

export const tokenPairReply = z.strictObject({
  accessToken: z.string(),
  refreshToken: z.string(),
  expiresIn: z.number().int().describe('access token lifetime in seconds'),
  tokenType: z.literal('Bearer'),
});
export type TokenPair = z.infer<typeof tokenPairReply>;

export const membershipReply = z.strictObject({ orgId: z.string(), orgName: z.string(), role: orgRoleSchema });
export type Membership = z.infer<typeof membershipReply>;

export const settingsReply = z.strictObject({ restrictToEu: z.boolean() });
/** An address change waiting for its confirmation: the link went to `email`, and works until `expiresAt`. */
export const emailChangeReply = z.strictObject({ email: z.string(), expiresAt: z.string() });

export const meReply = z.strictObject({
  id: z.string(),
  email: z.string(),
  firstName: z.string(),
  lastName: z.string(),
  locale: localeSchema,
  emailVerified: z.boolean(),
  settings: settingsReply,
  memberships: z.array(membershipReply),
});
export type Me = z.infer<typeof meReply>;

/** What chat's routing replica needs of a user, and nothing else of them (no address, no names). */
export const routingReply = z.strictObject({
  id: z.string(),
  restrictToEu: z.boolean(),
  memberships: z.array(membershipReply.pick({ orgId: true, role: true })),
});
export type Routing = z.infer<typeof routingReply>;

export const registerReply = tokenPairReply.extend({ user: meReply });
export type RegisterReply = z.infer<typeof registerReply>;

export const apiKeyCreatedReply = z.strictObject({
  id: z.string(),
  name: z.string(),
  workspace: z.string(),
  key: z.string().describe('shown once; Ally keeps only its hash'),
  createdAt: time,
});
export type ApiKeyCreated = z.infer<typeof apiKeyCreatedReply>;

export const apiKeySummaryReply = z.strictObject({
  id: z.string(),
  name: z.string(),
  workspace: z.string(),
  prefix: z.string(),
  createdAt: time,
  lastUsedAt: time.nullable(),
});
export type ApiKeySummary = z.infer<typeof apiKeySummaryReply>;

export const orgPolicyReply = z.strictObject({
  euOnly: z.boolean(),
  allowedModels: z.array(z.string()).nullable(),
  chatRetentionDays: z.number().int().nullable(),
  blockedTerms: z.array(z.string()),
});
export type OrgPolicy = z.infer<typeof orgPolicyReply>;

export const organizationReply = z.strictObject({ id: z.string(), name: z.string(), role: orgRoleSchema, policy: orgPolicyReply, createdAt: time });
export type Organization = z.infer<typeof organizationReply>;

export const memberReply = z.strictObject({
  userId: z.string(),
  firstName: z.string(),
  lastName: z.string(),
  email: z.string(),
  role: orgRoleSchema,
  joinedAt: time,
});
export type Member = z.infer<typeof memberReply>;

export const invitationReply = z.strictObject({ id: z.string(), orgId: z.string(), email: z.string(), role: orgRoleSchema, expiresAt: time });
export type Invitation = z.infer<typeof invitationReply>;

/** An invitation nobody accepted yet and still valid, as its organisation's owners and admins see it. */
export const pendingInvitationReply = invitationReply.extend({
  createdAt: time,
  invitedBy: z.string().nullable().describe('who sent it (null once they were erased)'),
});
export type PendingInvitation = z.infer<typeof pendingInvitationReply>;

export const jwksReply = z.strictObject({ keys: z.array(z.record(z.string(), z.unknown())) });
export type Jwks = z.infer<typeof jwksReply>;

export interface ApiKeyIdentity {
  userId: string;
  workspace: string;
  platformRoles: ('compliance' | 'admin')[];
}

export interface Contact {
  /** Whose address it is: notify ties the mail to them (their export, their erasure, no mail once erased). */
  userId: string;
  email: string;
  firstName: string;
  locale: Locale;
  /**
   * Whether the user confirmed the address is theirs: what is tied to the address alone (mails before the
   * account) is theirs only then. Absent from identity pods of the release before: taken as confirmed.
   */
  addressConfirmed?: boolean;
}

export interface SsoStart {
  authorizationUrl: string;
}
