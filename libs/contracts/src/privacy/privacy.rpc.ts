import { z } from 'zod';
import { wholeListParams } from '../common/query-params.js';
import { rpc } from '../common/rpc.js';
import { idSchema } from '../common/validation.js';
import { pageOf } from '../common/replies.js';
import * as r from './privacy.replies.js';
import * as s from './privacy.schemas.js';

const none = z.strictObject({});

/**
 * privacy's RPCs for the gateway (`ally.rpc.privacy.<entity>.<verb>`). The
 * `admin` ones need the `compliance` platform role, checked by the gateway
 * and again by privacy. Never rename a subject without a migration plan.
 */
export const PrivacyRpc = {
  createRequest: rpc(r.privacyRequestReply)('ally.rpc.privacy.request.create', s.createPrivacyRequestInput),
  listRequests: rpc(pageOf(r.privacyRequestReply))('ally.rpc.privacy.request.list', s.listPrivacyRequestsInput),
  getRequest: rpc(r.privacyRequestReply)('ally.rpc.privacy.request.get', s.privacyRequestIdInput),
  download: rpc<r.ExportDownload>()('ally.rpc.privacy.export.download', s.downloadExportInput),
  downloadPart: rpc<{ data: string }>()('ally.rpc.privacy.export.part', s.downloadPartInput),

  recordConsent: rpc(r.consentReply)('ally.rpc.privacy.consent.record', s.recordConsentInput, { authenticated: false }),
  getConsents: rpc(r.consentReply)('ally.rpc.privacy.consent.get', s.consentPageInput, { authenticated: false }),
  withdrawConsents: rpc(r.consentReply)('ally.rpc.privacy.consent.withdraw', s.consentSubjectInput, { authenticated: false }),

  decide: rpc(r.privacyRequestReply)('ally.rpc.privacy.admin.request.decide', s.privacyDecisionInput),
  adminListRequests: rpc(pageOf(r.privacyRequestReply))('ally.rpc.privacy.admin.request.list', s.adminListPrivacyRequestsInput),
  listRetentionPolicies: rpc(pageOf(r.retentionPolicyReply))('ally.rpc.privacy.retention-policy.list', z.strictObject({ ...wholeListParams })),
  updateRetentionPolicies: rpc(z.strictObject({ data: z.array(r.retentionPolicyReply) }))('ally.rpc.privacy.retention-policy.update', s.updateRetentionPoliciesInput),
  startRetentionRun: rpc(r.retentionRunReply)('ally.rpc.privacy.retention-run.start', s.startRetentionRunInput),
  getRetentionRun: rpc(r.retentionRunReply)('ally.rpc.privacy.retention-run.get', s.retentionRunIdInput),
  listRetentionRuns: rpc(pageOf(r.retentionRunReply))('ally.rpc.privacy.retention-run.list', s.listRetentionRunsInput),
  createLegalHold: rpc(r.legalHoldReply)('ally.rpc.privacy.legal-hold.create', s.createLegalHoldInput),
  releaseLegalHold: rpc(r.legalHoldReply)('ally.rpc.privacy.legal-hold.release', s.legalHoldIdInput),
  listLegalHolds: rpc(pageOf(r.legalHoldReply))('ally.rpc.privacy.legal-hold.list', s.listLegalHoldsInput),
  /**
   * Whether a legal hold stands for the caller, or for `authorId` (who wrote what the caller deletes: an
   * organisation's assistant an admin removes): chat asks before a deletion of what a hold keeps.
   */
  ownHold: rpc<{ held: boolean }>()('ally.rpc.privacy.legal-hold.own', z.strictObject({ authorId: idSchema('must be a user id').optional() })),
  processingActivities: rpc<r.ProcessingRegister | { csv: string }>()('ally.rpc.privacy.processing-activities.get', s.processingActivitiesInput),
} as const;
