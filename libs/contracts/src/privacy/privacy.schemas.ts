import { z } from 'zod';
import { privacyScopeSchema } from '../common/privacy-rpc.js';
import { letterText, plainText } from '../common/text-fields.js';
import { pageParams } from '../common/query-params.js';
import { idSchema } from '../common/validation.js';
import { findCategory, takesRetentionDays } from './data-category-registry.js';

export const privacyRequestTypeSchema = z.enum(['access', 'portability', 'erasure', 'restriction', 'objection']);
/** Rectification happens in identity (PATCH /v1/me); privacy records it for Art. 19. */
export type PrivacyRequestType = z.infer<typeof privacyRequestTypeSchema> | 'rectification';
export const privacyRequestStatusSchema = z.enum(['received', 'in_progress', 'completed', 'failed']);
export type PrivacyRequestStatus = z.infer<typeof privacyRequestStatusSchema>;

export const createPrivacyRequestInput = z
  .strictObject({
    type: privacyRequestTypeSchema,
    scope: privacyScopeSchema.default('all'),
  })
  // What an objection reaches (the login audit, the suppression list) is the whole account's, in no workspace:
  // one for a workspace would be upheld with nothing stopped.
  .refine((r) => r.type !== 'objection' || r.scope === 'all', {
    path: ['scope'],
    message: "an objection concerns the whole account (its login audit and the mail suppression list belong to no workspace): leave scope out or send 'all'",
  });
export const listPrivacyRequestsInput = z.strictObject(pageParams);
/** `awaiting=decision`: restrictions not yet lifted and objections not yet decided, whatever their status says. */
export const adminListPrivacyRequestsInput = z.strictObject({ status: privacyRequestStatusSchema.optional(), awaiting: z.enum(['decision']).optional(), ...pageParams });
export const privacyRequestIdInput = z.strictObject({ id: idSchema('must be a valid id') });
export const privacyDecisionSchema = z.enum(['lift', 'uphold', 'reject']);
export type PrivacyDecision = z.infer<typeof privacyDecisionSchema>;
/** Compliance's decision on a restriction (lift) or an objection (upheld, or rejected with the compelling grounds). */
export const decisionBody = z.strictObject({
  decision: privacyDecisionSchema,
  /** Written to the subject: shown with their request and mailed to them (Art. 12(4), 18(3) GDPR). */
  reason: letterText(2000).min(3, 'must be at least 3 characters'),
});
export const privacyDecisionInput = decisionBody.extend({ id: idSchema('must be a valid id') });
export const exportFormatSchema = z.enum(['zip', 'json']).default('zip');
const exportFile = z.strictObject({ id: idSchema('must be a valid id'), format: exportFormatSchema });
/** `headOnly` (a HEAD request): what a download would send, not recorded as a download. */
export const downloadExportInput = exportFile.extend({ headOnly: z.boolean().optional() });
export const downloadPartInput = exportFile.extend({ part: z.number().int().min(0) });

/** A pseudonymous id the client made up (e.g. a random id in a first-party cookie): never an email or a name. */
export const consentSubjectIdSchema = z
  .string()
  .min(16, 'must be at least 16 characters')
  .max(128, 'must be at most 128 characters')
  .regex(/^[A-Za-z0-9_.:-]+$/, 'may hold letters, digits and _ . : - only (a pseudonymous id, not an address)');
export const consentPurposeSchema = z.string().regex(/^[a-z][a-z0-9_.-]{0,63}$/, 'must be a lower-case purpose name such as "analytics"');
export const recordConsentInput = z.strictObject({
  subjectId: consentSubjectIdSchema,
  purposes: z.record(consentPurposeSchema, z.boolean()).refine((p) => Object.keys(p).length > 0 && Object.keys(p).length <= 50, 'must name 1 to 50 purposes'),
  policyVersion: plainText(64).min(1, 'must not be empty'),
});
export const consentSubjectInput = z.strictObject({ subjectId: consentSubjectIdSchema });
/** `GET /v1/privacy/consents/:subjectId`: the current consents, and a page of the history (newest first). */
export const consentPageInput = z.strictObject({ subjectId: consentSubjectIdSchema, ...pageParams });
/** How many purposes one subject's consents may name: a consent form asks a few, never this many. */
export const MAX_CONSENT_PURPOSES = 100;
/**
 * Decisions one subject may record in 24 hours (a form sends one per purpose): the route needs no login, and each
 * decision is kept two years as proof. A withdrawal is never refused (Art. 7(3) GDPR: as easy as giving).
 */
export const MAX_CONSENT_DECISIONS_PER_DAY = 1_000;

export const legalBasisSchema = z.enum([
  'contract (Art. 6(1)(b) GDPR)',
  'legal obligation (Art. 6(1)(c) GDPR)',
  'legitimate interest (Art. 6(1)(f) GDPR)',
  'consent (Art. 6(1)(a) GDPR)',
]);
export const retentionPolicyInput = z
  .strictObject({
    service: z.enum(['identity', 'chat', 'billing', 'privacy', 'notify']),
    category: z.string().min(1).max(64),
    /** null: kept while the account exists (or per the service's own rule), deleted on erasure. */
    retentionDays: z.number().int().min(1).max(36_500).nullable(),
    basis: legalBasisSchema.optional(),
  })
  .superRefine((p, ctx) => {
    const declared = findCategory(p.service, p.category);
    if (!declared) ctx.addIssue({ code: 'custom', path: ['category'], message: `is not a data category of ${p.service}` });
    else if (p.retentionDays !== null && !takesRetentionDays(declared)) {
      ctx.addIssue({ code: 'custom', path: ['retentionDays'], message: `must be null: ${p.category} has no period in days (${declared.retentionRule})` });
    } else if (declared.retentionDays !== null && (p.retentionDays === null || p.retentionDays > declared.retentionDays)) {
      // The privacy policy's period is a promise to keep the data no longer: shorter is data minimisation, longer (or for ever) breaks it.
      // Also where the law sets the period (invoices): kept as long as it must be, not longer.
      ctx.addIssue({ code: 'custom', path: ['retentionDays'], message: `must be at most ${declared.retentionDays}: the privacy policy keeps ${p.category} no longer (${declared.retentionRule})` });
    }
    // The basis is declared with the category in libs/contracts: the register, the objection plan and the services' processing follow it.
    if (declared && p.basis !== undefined && p.basis !== declared.basis) {
      ctx.addIssue({ code: 'custom', path: ['basis'], message: `is ${declared.basis} for ${p.category}, declared with the category; it is not a setting` });
    }
  });
const retentionPolicyList = z
  .array(retentionPolicyInput)
  .min(1, 'must list at least one policy')
  .max(100, 'must list at most 100 policies')
  .superRefine((list, ctx) => {
    // Two values for one category in one change: which holds, and what the audit trail says changed, would be a guess.
    const seen = new Set<string>();
    list.forEach((p, i) => {
      const key = `${p.service}/${p.category}`;
      if (seen.has(key)) ctx.addIssue({ code: 'custom', path: [i, 'category'], message: `names ${key} a second time` });
      seen.add(key);
    });
  });
/** The body of `PUT /v1/admin/privacy/retention-policies` as documented: one policy or a list of them. */
export const retentionPoliciesBody = z.union([retentionPolicyInput, retentionPolicyList]);
/**
 * The same body, validated as the branch its shape picks (a list, or one policy):
 * a union that fails answers only "(body): Invalid input", never the bad field
 * (`retentionDays`, or `0.retentionDays` in a list).
 */
export const updateRetentionPoliciesInput = z.unknown().transform((body, ctx): z.infer<typeof retentionPoliciesBody> => {
  const result = (Array.isArray(body) ? retentionPolicyList : retentionPolicyInput).safeParse(body);
  if (result.success) return result.data;
  // As raised (code, path, keys): the gateway names a missing or unknown field from them.
  for (const issue of result.error.issues) ctx.addIssue(issue as z.core.$ZodRawIssue);
  return z.NEVER;
});

export const startRetentionRunInput = z.strictObject({
  dryRun: z.boolean(),
  /** Category names (e.g. `login-audit`); all categories when left out. */
  categories: z.array(z.string().min(1).max(64)).min(1).max(100).transform((names) => [...new Set(names)]).optional(),
});
export const retentionRunIdInput = z.strictObject({ id: idSchema('must be a valid id') });
/** Runs newest first; `status` and `dryRun` narrow them (the daily schedule's among compliance's). */
export const listRetentionRunsInput = z.strictObject({
  status: z.enum(['queued', 'running', 'completed', 'failed']).optional(),
  dryRun: z.enum(['true', 'false']).optional(),
  ...pageParams,
});

export const createLegalHoldInput = z.strictObject({
  userId: idSchema('must be a valid user id'),
  reason: letterText(500).min(3, 'must be at least 3 characters'),
});
export const legalHoldIdInput = z.strictObject({ id: idSchema('must be a valid id') });
export const listLegalHoldsInput = z.strictObject({ active: z.enum(['true', 'false']).optional(), ...pageParams });

export const processingActivitiesInput = z.strictObject({ format: z.enum(['json', 'csv']).default('json') });
