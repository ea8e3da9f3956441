import type { DataCategory } from '../common/data-categories.js';
import type { Processor } from './processors.js';
import type { PrivacyDecision, PrivacyRequestStatus, PrivacyRequestType } from './privacy.schemas.js';

export type PrivacyStepAction = 'export' | 'erase' | 'notify';
export type PrivacyStepStatus = 'pending' | 'running' | 'completed' | 'failed';

export interface PrivacyRequestStep {
  service: string;
  action: PrivacyStepAction;
  status: PrivacyStepStatus;
  attempts: number;
  lastError: string | null;
  completedAt: string | null;
  /** Counts only (rows per category), never the data. */
  result: Record<string, number> | null;
}

export interface ProcessorNotice {
  processor: Processor['id'];
  name: string;
  service: string;
  action: 'erasure' | 'rectification';
  /** `confirmed`: the service reported it told the processor; `delegated`: the service's step is done and forwarding is its duty. */
  status: 'confirmed' | 'delegated';
  at: string;
}

export interface PrivacyRequestView {
  id: string;
  type: PrivacyRequestType;
  scope: string;
  status: PrivacyRequestStatus;
  createdAt: string;
  dueAt: string;
  completedAt: string | null;
  escalatedAt: string | null;
  /** Access and portability: until when the package can be downloaded. */
  downloadUntil: string | null;
  /** Erasure suspended by a legal hold (Art. 17(3)(e) GDPR). */
  suspended: boolean;
  failure: string | null;
  /** Restriction and objection: compliance's decision, null while none was taken. */
  decision: PrivacyDecisionView | null;
  steps: PrivacyRequestStep[];
  processorNotices: ProcessorNotice[];
}

export interface PrivacyDecisionView {
  outcome: PrivacyDecision;
  /** Compliance's words to the subject. */
  reason: string;
  decidedAt: string;
  /** A lift takes effect after the subject was told (Art. 18(3) GDPR); an objection's outcome at once. */
  takesEffectAt: string;
  /** Null until it did. */
  tookEffectAt: string | null;
}

export interface PrivacyPage<T> {
  data: T[];
  nextCursor: string | null;
}

/** A download travels in parts (NATS messages are small); the gateway joins them. */
export interface ExportDownload {
  filename: string;
  contentType: 'application/zip' | 'application/json';
  size: number;
  parts: number;
  sha256: string;
}

export interface ConsentState {
  purpose: string;
  granted: boolean;
  policyVersion: string;
  recordedAt: string;
  expiresAt: string;
  /** Past its 2 years: to be asked again. */
  expired: boolean;
}

export interface ConsentRecord {
  purpose: string;
  granted: boolean;
  policyVersion: string;
  userAgent: string | null;
  source: 'given' | 'withdrawal';
  recordedAt: string;
  expiresAt: string;
}

export interface ConsentView {
  subjectId: string;
  current: ConsentState[];
  /** Newest first, one page (`?limit=&cursor=`); `nextCursor` continues it. */
  history: ConsentRecord[];
  nextCursor: string | null;
}

export interface RetentionPolicyView {
  service: DataCategory['service'];
  category: string;
  retentionDays: number | null;
  basis: DataCategory['basis'];
  retentionRule: string;
  /** The value declared in contracts; `retentionDays` differs when compliance changed it. */
  defaultRetentionDays: number | null;
  updatedAt: string | null;
  updatedBy: string | null;
}

export interface RetentionRunView {
  id: string;
  status: 'queued' | 'running' | 'completed' | 'failed';
  dryRun: boolean;
  trigger: 'schedule' | 'compliance' | 'cli';
  launchedAs: 'in-process' | 'kubernetes-job';
  jobName: string | null;
  categories: string[] | null;
  heldUsers: number;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  results: { service: string; category: string; affected: number }[];
  errors: { service: string; error: string }[];
}

export interface LegalHoldView {
  id: string;
  userId: string;
  reason: string;
  createdAt: string;
  createdBy: string;
  releasedAt: string | null;
  releasedBy: string | null;
}

export interface ProcessingActivity {
  service: DataCategory['service'];
  category: string;
  description: string;
  purposes: string[];
  basis: DataCategory['basis'];
  retentionDays: number | null;
  retention: string;
  dataSubjects: string;
  recipients: { name: string; address: string; country: string; service: string; transferBasis: Processor['transferBasis'] }[];
}

export interface ProcessingRegister {
  controller: { name: string; address: string; email: string };
  generatedAt: string;
  activities: ProcessingActivity[];
}
