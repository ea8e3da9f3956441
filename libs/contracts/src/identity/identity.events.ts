import { z } from 'zod';
import { localeSchema, orgRoleSchema } from './identity.schemas.js';

/**
 * When identity's database counted an organisation's members for the event, to the microsecond (under the
 * organisation's member lock): the order of the counts, whichever replica's clock stamped the envelope.
 * Absent from events of releases before it.
 */
const memberCountTime = z.iso.datetime().optional();

/**
 * Events identity publishes through its outbox, keyed by type
 * (subject `ally.evt.<type>`). Payloads carry ids and only the personal data a
 * consumer needs: notify needs an address, a first name and a locale.
 */
export const IdentityEvents = {
  'identity.user.registered': z.object({
    userId: z.uuid(),
    email: z.string(),
    firstName: z.string(),
    locale: localeSchema,
    /** Single-use, expiring; notify turns it into the verification link. */
    verificationToken: z.string(),
    restrictToEu: z.boolean(),
    /** How long the link works (identity's setting); absent in events written before it was added. */
    validForSeconds: z.number().int().positive().optional(),
  }),
  'identity.user.verified': z.object({
    userId: z.uuid(),
    email: z.string(),
    firstName: z.string(),
    locale: localeSchema,
    /** The "EU models only" setting, for the welcome mail to state; absent in events written before it was added. */
    restrictToEu: z.boolean().optional(),
  }),
  /** Address, name and locale: notify tells the user about changes to their account. */
  'identity.user.settings-changed': z.object({
    userId: z.uuid(),
    restrictToEu: z.boolean(),
    email: z.string(),
    firstName: z.string(),
    locale: localeSchema,
  }),
  /**
   * The "EU models only" setting as it now is (at registration, at a change, when an owner's defaults come back):
   * chat's routing replica reads this, not the events above, which carry an address, a name and a token for notify.
   */
  'identity.user.residency-set': z.object({ userId: z.uuid(), restrictToEu: z.boolean() }),
  'identity.user.updated': z.object({ userId: z.uuid(), changed: z.array(z.string()) }),
  /** A new address asked for: notify mails it the confirmation link (the address is not the account's until then). */
  'identity.user.email-change-requested': z.object({
    userId: z.uuid(),
    newEmail: z.string(),
    firstName: z.string(),
    locale: localeSchema,
    token: z.string(),
    validForSeconds: z.number().int().positive(),
  }),
  /** The new address confirmed and in place: notify tells the one before (a change its owner did not make is then seen). */
  'identity.user.email-changed': z.object({ userId: z.uuid(), previousEmail: z.string(), newEmail: z.string(), firstName: z.string(), locale: localeSchema }),
  'identity.user.deleted': z.object({ userId: z.uuid() }),
  /** First sign-in from an IP address (`newDevice`): notify warns the user, with who and where from; a sign-in from a known place carries neither. */
  'identity.user.signed-in': z.discriminatedUnion('newDevice', [
    z.object({ userId: z.uuid(), method: z.enum(['password', 'sso']), newDevice: z.literal(false) }),
    z.object({
      userId: z.uuid(),
      method: z.enum(['password', 'sso']),
      newDevice: z.literal(true),
      email: z.string(),
      firstName: z.string(),
      locale: localeSchema,
      ip: z.string().nullable(),
    }),
  ]),
  'identity.password.reset-requested': z.object({
    userId: z.uuid(),
    email: z.string(),
    firstName: z.string(),
    locale: localeSchema,
    resetToken: z.string(),
    /** How long the link works (identity's setting); absent in events written before it was added. */
    validForSeconds: z.number().int().positive().optional(),
  }),
  'identity.organization.created': z.object({ orgId: z.uuid(), name: z.string(), ownerId: z.uuid() }),
  /** Its last member was erased: nobody is left to manage it or to pay for it, and it is gone. */
  'identity.organization.dissolved': z.object({ orgId: z.uuid() }),
  'identity.organization.policy-changed': z.object({
    orgId: z.uuid(),
    euOnly: z.boolean(),
    allowedModels: z.array(z.string()).nullable(),
    chatRetentionDays: z.number().nullable(),
    blockedTerms: z.array(z.string()).default([]),
  }),
  /** A membership as it now is: on joining, and when an erasure makes a member the organisation's owner. */
  'identity.member.added': z.object({ orgId: z.uuid(), userId: z.uuid(), role: orgRoleSchema, memberCount: z.number().int(), countedAt: memberCountTime }),
  'identity.member.removed': z.object({ orgId: z.uuid(), userId: z.uuid(), memberCount: z.number().int(), countedAt: memberCountTime }),
  'identity.invitation.created': z.object({
    invitationId: z.uuid(),
    orgId: z.uuid(),
    orgName: z.string(),
    email: z.string(),
    /** The account the address belongs to, if it has one: its owner's restriction or erasure applies to the mail. */
    inviteeUserId: z.uuid().optional(),
    role: orgRoleSchema,
    invitedBy: z.string(),
    token: z.string(),
    locale: localeSchema,
    /** How long the link works (identity's setting); absent in events written before it was added. */
    validForSeconds: z.number().int().positive().optional(),
  }),
} as const;

export type IdentityEventType = keyof typeof IdentityEvents;
export type IdentityEventData<T extends IdentityEventType> = z.infer<(typeof IdentityEvents)[T]>;

/**
 * The one-time tokens identity's events carry to notify for the links in its
 * mails. identity keeps only their hash, so its outbox forgets them once the
 * event is published: a read of the database (a backup) finds no live token.
 */
export const IDENTITY_EVENT_SECRETS = ['verificationToken', 'resetToken', 'token'] as const;
