import { z } from 'zod';
import { displayName, INVISIBLE_CHARS, modelIdSchema, plainText, tooLong } from '../common/text-fields.js';
import { pageParams } from '../common/query-params.js';
import { idSchema } from '../common/validation.js';

/**
 * `ally-login.evil.example`: a run of letters, a dot, and letters that could end a domain.
 * Runs are tried from their start only (the lookbehind): from every letter of a long
 * one, the time would grow with the square of its length.
 */
const DOMAIN_LIKE = /(?<![\p{L}\p{N}-])[\p{L}\p{N}-]{2,}\.[a-z]{2,}(?=$|[\s/:?#])/iu;
/** A scheme (`https://`, `mailto:`), `www.`, or a domain followed by a path or port. */
const LINK_LIKE = /(?<![a-z0-9+.-])[a-z][a-z0-9+.-]*:\/\/|\bmailto:|\bwww\.|[\p{L}\p{N}-]\.[a-z]{2,}[/:]/iu;

export const PASSWORD_MIN = 12;
export const PASSWORD_MAX = 256;

export const emailSchema = z
  .string()
  .trim()
  .max(254, 'must be at most 254 characters')
  .pipe(z.email('must be a valid email address'))
  .transform((e) => e.toLowerCase());

/**
 * An unpaired surrogate has no UTF-8 form: hashed, every one would become the
 * same U+FFFD, and different passwords would open the account.
 */
const ENCODABLE = [/^[^\p{Cs}]*$/u, 'must not contain unpaired surrogates'] as const;

export const passwordSchema = z
  .string()
  .min(PASSWORD_MIN, `must be at least ${PASSWORD_MIN} characters`)
  .max(PASSWORD_MAX, tooLong(PASSWORD_MAX))
  .regex(...ENCODABLE);

/** A letter that shows: Hangul and Mongolian fillers are letters to Unicode, and print nothing. */
const NAME_LETTER = `(?![${INVISIBLE_CHARS}])\\p{L}`;

/**
 * Real names: letters (any script), spaces, hyphens, apostrophes, dots; no
 * digits or symbols, nothing invisible, and at most a few marks on a letter
 * (a name of one letter under a pile of combining marks shows as a smudge).
 */
export const personNameSchema = z
  .string()
  .trim()
  .min(1, { message: 'is required', abort: true })
  .max(100, tooLong(100))
  .regex(new RegExp(`^${NAME_LETTER}\\p{M}{0,3}(?:${NAME_LETTER}\\p{M}{0,3}|[ '’.-])*$`, 'u'), 'must be a real name (letters, spaces, hyphens, apostrophes)')
  // Names go into mails to other people (an invitation names the inviter), where a domain becomes a link.
  .refine((v) => !DOMAIN_LIKE.test(v), 'must be a name, not a web address');

export const localeSchema = z.enum(['de', 'en']);
export const orgRoleSchema = z.enum(['owner', 'admin', 'member']);
/** Owners and admins manage an organisation: its policy, members, invitations, billing and assistants. */
export const managesOrg = (role: z.infer<typeof orgRoleSchema> | undefined | null): boolean => role === 'owner' || role === 'admin';
export const platformRoleSchema = z.enum(['compliance', 'admin']);
/**
 * An organisation's name is in the subject and text of invitations sent to
 * any address: no web address with a scheme, `www.` or a path, which mail
 * programs would show as a link in Ally's name. A bare domain stays allowed
 * (companies are named "Booking.com").
 */
export const orgNameSchema = displayName(120, 2).refine((v) => !LINK_LIKE.test(v), 'must be a name, not a web address (no http://, www. or /path)');
export const tokenSchema = z.string().min(16, 'is not a valid token').max(512, 'is not a valid token');
/** `private` or an organisation id. */
const WORKSPACE = 'must be "private" or an organisation id';
/** An organisation id in one spelling (lower case), so `B433…` and `b433…` can never be two workspaces with two quotas. */
export const workspaceSchema = z.union([z.literal('private'), idSchema(WORKSPACE)], { error: WORKSPACE });

export const registerInput = z.strictObject({
  email: emailSchema,
  password: passwordSchema,
  firstName: personNameSchema,
  lastName: personNameSchema,
  locale: localeSchema.optional(),
  organizationName: orgNameSchema.optional(),
});
export const verifyEmailInput = z.strictObject({ token: tokenSchema });
export const loginInput = z.strictObject({ email: emailSchema, password: z.string().min(1, 'is required').max(PASSWORD_MAX, tooLong(PASSWORD_MAX)).regex(...ENCODABLE) });
export const refreshInput = z.strictObject({ refreshToken: tokenSchema });
export const logoutInput = refreshInput;
/** The session an access token names (its `sid`). */
export const sessionCheckInput = z.strictObject({ sessionId: idSchema('must be a session id') });
export const forgotPasswordInput = z.strictObject({ email: emailSchema });
export const resetPasswordInput = z.strictObject({ token: tokenSchema, password: passwordSchema });
export const updateMeInput = z
  .strictObject({ firstName: personNameSchema.optional(), lastName: personNameSchema.optional(), locale: localeSchema.optional() })
  .refine((v) => Object.keys(v).length > 0, 'at least one of firstName, lastName, locale is required');
export const updateSettingsInput = z.strictObject({ restrictToEu: z.boolean() });
/**
 * Rectification of the address (Art. 16 GDPR): the new one, confirmed by the link mailed to it; the current
 * password, for an account that has one (a session left open must not hand the account to another address).
 */
export const changeEmailInput = z.strictObject({
  email: emailSchema,
  password: z.string().min(1, 'is required').max(PASSWORD_MAX, tooLong(PASSWORD_MAX)).regex(...ENCODABLE).optional(),
});
export const createApiKeyInput = z.strictObject({
  name: displayName(100),
  workspace: workspaceSchema,
});
export const idInput = z.strictObject({ id: idSchema('must be a valid id') });
/** `GET /v1/me/api-keys`: the caller's keys, newest first. */
export const listApiKeysInput = z.strictObject(pageParams);
export const createOrgInput = z.strictObject({ name: orgNameSchema });
export const orgIdInput = z.strictObject({ orgId: idSchema('must be a valid organisation id') });
/** `GET /v1/orgs/:orgId/members`: the organisation from the path, the page from the query; in order of joining. */
export const listMembersInput = z.strictObject({ orgId: idSchema('must be a valid organisation id'), ...pageParams });
/** The HTTP body; the organisation comes from the path. */
export const invitationBody = z.strictObject({ email: emailSchema, role: z.enum(['admin', 'member']) });
export const createInvitationInput = invitationBody.extend({ orgId: idSchema('must be a valid organisation id') });
export const acceptInvitationInput = z.strictObject({ token: tokenSchema });
export const listInvitationsInput = z.strictObject({ orgId: idSchema('must be a valid organisation id'), ...pageParams });
export const revokeInvitationInput = z.strictObject({ orgId: idSchema('must be a valid organisation id'), invitationId: idSchema('must be a valid invitation id') });
export const removeMemberInput = z.strictObject({
  orgId: idSchema('must be a valid organisation id'),
  userId: idSchema('must be a valid user id'),
});
const orgPolicyFields = z.strictObject({
  euOnly: z.boolean().optional(),
  /** null: every model the catalog offers again. */
  // A list that names a model twice allows it once.
  allowedModels: z.array(modelIdSchema).max(100, 'must list at most 100 models').transform((models) => [...new Set(models)]).nullable().optional(),
  /** null: business conversations are kept until their users delete them. */
  chatRetentionDays: z.number().int().min(1).max(3650).nullable().optional(),
  /** Prompts containing one of these (case-insensitive) are refused before any model sees them. */
  blockedTerms: z.array(plainText(100).min(2, 'must be at least 2 characters')).max(200).optional(),
});
const POLICY_REQUIRED = 'at least one of euOnly, allowedModels, chatRetentionDays, blockedTerms is required';
/** The HTTP body; the organisation comes from the path. */
export const orgPolicyBody = orgPolicyFields.refine((v) => Object.values(v).some((x) => x !== undefined), POLICY_REQUIRED);
export const updateOrgPolicyInput = orgPolicyFields
  .extend({ orgId: idSchema('must be a valid organisation id') })
  .refine(({ orgId: _, ...v }) => Object.values(v).some((x) => x !== undefined), POLICY_REQUIRED);
export const apiKeyVerifyInput = z.strictObject({ key: z.string().min(1).max(200) });
export const ssoStartInput = z.strictObject({ provider: z.string().regex(/^[a-z0-9-]{1,40}$/, 'unknown provider') });
export const ssoCallbackInput = z.strictObject({
  provider: z.string().regex(/^[a-z0-9-]{1,40}$/, 'unknown provider'),
  /** The full callback URL as the browser called it (code, state, iss). */
  callbackUrl: z.url(),
  /**
   * The attempt's state as the browser that started it brought it back (the gateway's cookie; empty: none):
   * the callback goes on only when it is the callback's own. Absent from a gateway of an earlier release.
   */
  browserState: z.string().max(512).optional(),
});
export const grantRoleInput = z.strictObject({ email: emailSchema, role: platformRoleSchema });

export type OrgRole = z.infer<typeof orgRoleSchema>;
export type PlatformRole = z.infer<typeof platformRoleSchema>;
export type Locale = z.infer<typeof localeSchema>;
