import { z } from 'zod';
import { DATA_HOLDING_SERVICES, LEGAL_BASES } from '../common/data-categories.js';
import { replyTime } from '../common/replies.js';
import { PROCESSOR_IDS } from './processors.js';
import { privacyDecisionSchema, privacyRequestStatusSchema, privacyRequestTypeSchema } from './privacy.schemas.js';

const service = z.enum(DATA_HOLDING_SERVICES);
const basis = z.enum(LEGAL_BASES);

export type PrivacyStepAction = 'export' | 'erase' | 'notify';
export type PrivacyStepStatus = 'pending' | 'running' | 'completed' | 'failed';

export const privacyRequestStepReply = z.strictObject({
  service: z.string(),
  action: z.enum(['export', 'erase', 'notify'] satisfies PrivacyStepAction[]),
  status: z.enum(['pending', 'running', 'completed', 'failed'] satisfies PrivacyStepStatus[]),
  attempts: z.number().int(),
  lastError: z.string().nullable(),
  completedAt: replyTime.nullable(),
  result: z.record(z.string(), z.number()).nullable().describe('counts only (rows per category), never the data'),
});
export type PrivacyRequestStep = z.infer<typeof privacyRequestStepReply>;

export const processorNoticeReply = z.strictObject({
  processor: z.enum(PROCESSOR_IDS),
  name: z.string(),
  service: z.string(),
  action: z.enum(['erasure', 'rectification']),
  status: z.enum(['confirmed', 'delegated']).describe("`confirmed`: the service reported it told the processor; `delegated`: the service's step is done and forwarding is its duty"),
  at: replyTime,
});
export type ProcessorNotice = z.infer<typeof processorNoticeReply>;

export const privacyDecisionReply = z.strictObject({
  outcome: privacyDecisionSchema,
  reason: z.string().describe("compliance's words to the subject"),
  decidedAt: replyTime,
  takesEffectAt: replyTime.describe("a lift takes effect after the subject was told (Art. 18(3) GDPR); an objection's outcome at once"),
  tookEffectAt: replyTime.nullable().describe('null until it did'),
});
export type PrivacyDecisionView = z.infer<typeof privacyDecisionReply>;

export const privacyRequestReply = z.strictObject({
  id: z.string(),
  // Rectification happens in identity (PATCH /v1/me); privacy records it for Art. 19.
  type: z.enum([...privacyRequestTypeSchema.options, 'rectification']),
  scope: z.string(),
  status: privacyRequestStatusSchema,
  createdAt: replyTime,
  dueAt: replyTime,
  completedAt: replyTime.nullable(),
  escalatedAt: replyTime.nullable(),
  downloadUntil: replyTime.nullable().describe('access and portability: until when the package can be downloaded'),
  suspended: z.boolean().describe('erasure suspended by a legal hold (Art. 17(3)(e) GDPR)'),
  failure: z.string().nullable(),
  decision: privacyDecisionReply.nullable().describe("restriction and objection: compliance's decision, null while none was taken"),
  steps: z.array(privacyRequestStepReply),
  processorNotices: z.array(processorNoticeReply),
});
export type PrivacyRequestView = z.infer<typeof privacyRequestReply>;

/** A download travels in parts (NATS messages are small); the gateway joins them. */
export interface ExportDownload {
  filename: string;
  contentType: 'application/zip' | 'application/json';
  size: number;
  parts: number;
  sha256: string;
}

const consentFields = {
  purpose: z.string(),
  granted: z.boolean(),
  policyVersion: z.string(),
  recordedAt: replyTime,
  expiresAt: replyTime,
};
export const consentStateReply = z.strictObject({ ...consentFields, expired: z.boolean().describe('past its 2 years: to be asked again') });
export type ConsentState = z.infer<typeof consentStateReply>;

export const consentRecordReply = z.strictObject({ ...consentFields, userAgent: z.string().nullable(), source: z.enum(['given', 'withdrawal']) });
export type ConsentRecord = z.infer<typeof consentRecordReply>;

export const consentReply = z.strictObject({
  subjectId: z.string(),
  current: z.array(consentStateReply),
  history: z.array(consentRecordReply).describe('newest first, one page (`?limit=&cursor=`); `nextCursor` continues it'),
  nextCursor: z.string().nullable(),
});
export type ConsentView = z.infer<typeof consentReply>;

export const retentionPolicyReply = z.strictObject({
  service,
  category: z.string(),
  retentionDays: z.number().int().nullable(),
  basis,
  retentionRule: z.string(),
  defaultRetentionDays: z.number().int().nullable().describe('the value declared in contracts; `retentionDays` differs when compliance changed it'),
  updatedAt: replyTime.nullable(),
  updatedBy: z.string().nullable(),
});
export type RetentionPolicyView = z.infer<typeof retentionPolicyReply>;

export const retentionRunReply = z.strictObject({
  id: z.string(),
  status: z.enum(['queued', 'running', 'completed', 'failed']),
  dryRun: z.boolean(),
  trigger: z.enum(['schedule', 'compliance', 'cli']),
  launchedAs: z.enum(['in-process', 'kubernetes-job']),
  jobName: z.string().nullable(),
  categories: z.array(z.string()).nullable(),
  heldUsers: z.number().int(),
  createdAt: replyTime,
  startedAt: replyTime.nullable(),
  finishedAt: replyTime.nullable(),
  results: z.array(z.strictObject({ service: z.string(), category: z.string(), affected: z.number().int() })),
  errors: z.array(z.strictObject({ service: z.string(), error: z.string() })),
});
export type RetentionRunView = z.infer<typeof retentionRunReply>;

export const legalHoldReply = z.strictObject({
  id: z.string(),
  userId: z.string(),
  reason: z.string(),
  createdAt: replyTime,
  createdBy: z.string(),
  releasedAt: replyTime.nullable(),
  releasedBy: z.string().nullable(),
});
export type LegalHoldView = z.infer<typeof legalHoldReply>;

export const processingActivityReply = z.strictObject({
  service,
  category: z.string(),
  description: z.string(),
  purposes: z.array(z.string()),
  basis,
  retentionDays: z.number().int().nullable(),
  retention: z.string(),
  dataSubjects: z.string(),
  recipients: z.array(
    z.strictObject({
      name: z.string(),
      address: z.string(),
      country: z.string(),
      service: z.string(),
      transferBasis: z.strictObject({ euEea: z.string(), switzerland: z.string() }),
    }),
  ),
});
export type ProcessingActivity = z.infer<typeof processingActivityReply>;

export const processingRegisterReply = z.strictObject({
  controller: z.strictObject({ name: z.string(), address: z.string(), email: z.string() }),
  generatedAt: replyTime,
  activities: z.array(processingActivityReply),
});
export type ProcessingRegister = z.infer<typeof processingRegisterReply>;
