import { z } from 'zod';
import { privacyDecisionSchema, privacyRequestTypeSchema } from './privacy.schemas.js';

/** Events privacy publishes through its outbox (`ally.evt.<type>`). */
export const PrivacyEvents = {
  /** notify mails the link; the address comes from identity's part of the export. */
  'privacy.export.ready': z.object({
    requestId: z.uuid(),
    userId: z.uuid(),
    email: z.string().nullable(),
    firstName: z.string().nullable(),
    locale: z.enum(['de', 'en']),
    downloadUntil: z.iso.datetime(),
    /** Relative to the public base URL. */
    downloadPath: z.string(),
  }),
  /**
   * An erasure of one workspace (`private` or an organisation id) is done: notify tells the subject (Art. 12(3)).
   * The whole account's erasure has nobody left to tell: notify's own step mails them before identity ends the account.
   */
  'privacy.erasure.completed': z.object({ requestId: z.uuid(), userId: z.uuid(), scope: z.string(), completedAt: z.iso.datetime() }),
  /** For the compliance team: a request near (or past) its due date, or failed. No personal data. */
  'privacy.request.escalated': z.object({
    requestId: z.uuid(),
    type: z.union([privacyRequestTypeSchema, z.literal('rectification')]),
    status: z.string(),
    dueAt: z.iso.datetime(),
    reason: z.enum(['due-soon', 'failed']),
  }),
  /** Art. 18: the subject's data may only be stored; consumers stop other processing for the scope. */
  'privacy.subject.restricted': z.object({ requestId: z.uuid(), userId: z.uuid(), scope: z.string() }),
  /** Art. 21: processing of these categories (based on legitimate interest) stops from now on; it resumes only if compliance rejects the objection for compelling grounds (`privacy.request.decided`). */
  'privacy.subject.objected': z.object({ requestId: z.uuid(), userId: z.uuid(), scope: z.string(), categories: z.array(z.string()) }),
  /** notify tells the subject what compliance decided on their restriction or objection, and why; a lift takes effect only at `takesEffectAt`. */
  'privacy.request.decided': z.object({
    requestId: z.uuid(),
    userId: z.uuid(),
    type: z.enum(['restriction', 'objection']),
    decision: privacyDecisionSchema,
    reason: z.string(),
    takesEffectAt: z.iso.datetime(),
  }),
  /** Compliance lifted a restriction and the subject was told beforehand: processing may resume in that scope. */
  'privacy.subject.restriction-lifted': z.object({ requestId: z.uuid(), userId: z.uuid(), scope: z.string() }),
  /** Compliance upheld an objection (no compelling grounds): these categories stop being processed for the subject. */
  'privacy.subject.objection-upheld': z.object({
    requestId: z.uuid(),
    userId: z.uuid(),
    scope: z.string(),
    categories: z.array(z.string()),
    /** A legal hold or a restriction keeps the subject's data: processing stops, nothing is deleted (absent: false). */
    keep: z.boolean().optional(),
  }),
  'privacy.retention-run.finished': z.object({ runId: z.uuid(), dryRun: z.boolean(), status: z.enum(['completed', 'failed']), affected: z.number().int() }),
} as const;

export type PrivacyEventType = keyof typeof PrivacyEvents;
