import { z } from 'zod';
import { base64Key32, baseConfigSchema, databaseConfigSchema, requireInProduction } from '@ally/platform';

export const privacyConfigSchema = baseConfigSchema
  .extend(databaseConfigSchema.shape)
  .extend({
    /** Wraps each export package's data key (AES-256-GCM). */
    PRIVACY_KEK: base64Key32.optional(),
    /**
     * Keys the audit trail's chain (HMAC-SHA256): whoever can write privacy's tables but lacks this key cannot
     * rewrite an entry and the chain after it so that it checks out. Never change it: the chain would no longer verify.
     */
    PRIVACY_AUDIT_KEY: base64Key32.optional(),
    /** Secret salt of the subject hash that tombstones and the audit trail keep instead of a user id. */
    PRIVACY_SUBJECT_SALT: z.string().min(16, 'must be at least 16 characters').optional(),
    /** Background saga and escalation worker; off for one-shot commands (retention Jobs). */
    PRIVACY_WORKER: z.enum(['on', 'off']).default('on'),
    PRIVACY_POLL_MS: z.coerce.number().int().min(10).default(1_000),
    /** How long one service may take to answer a step. */
    PRIVACY_STEP_TIMEOUT_MS: z.coerce.number().int().min(100).default(30_000),
    /** A step claimed longer ago than this belongs to a worker that died; it is taken again. */
    PRIVACY_STEP_LEASE_MS: z.coerce.number().int().min(200).default(120_000),
    /** First retry delay; doubles per attempt up to PRIVACY_RETRY_MAX_MS. */
    PRIVACY_RETRY_BASE_MS: z.coerce.number().int().min(1).default(2_000),
    PRIVACY_RETRY_MAX_MS: z.coerce.number().int().min(1).default(300_000),
    /**
     * Calls of one attempt at a sliced erasure (each deletes a slice, within PRIVACY_STEP_TIMEOUT_MS): a service
     * still answering `more` after these is asked again at the next attempt, after the retry delay, so one that
     * never finishes shows as a failing step instead of holding it for ever.
     */
    PRIVACY_ERASE_SLICES_PER_ATTEMPT: z.coerce.number().int().min(1).default(200),
    /** 0: retry transient failures until the service confirms (escalation covers the due date). */
    PRIVACY_STEP_MAX_ATTEMPTS: z.coerce.number().int().min(0).default(0),
    /** Compliance hears of an open request this many days before its due date. */
    PRIVACY_ESCALATE_DAYS_BEFORE: z.coerce.number().min(0).default(7),
    /** How long before a lifted restriction takes effect the subject is told of it (Art. 18(3) GDPR). */
    PRIVACY_LIFT_NOTICE_HOURS: z.coerce.number().min(0).max(720).default(72),
    PRIVACY_EXPORT_TTL_DAYS: z.coerce.number().int().min(1).max(30).default(7),
    /**
     * The most an export's collected parts may weigh (bytes, sealed) to be packaged in one piece in memory
     * (the package takes a few times that while it is built); a larger one fails and goes to compliance.
     */
    PRIVACY_EXPORT_MAX_BYTES: z.coerce.number().int().min(1_000_000).default(128 * 1024 * 1024),
    /**
     * A retention run of every category when the last scheduled one is this many hours old, started
     * by the privacy replicas themselves (one at a time); 0 leaves the schedule to the Kubernetes
     * CronJob `ally-retention`, as the cluster does.
     */
    RETENTION_SCHEDULE_HOURS: z.coerce.number().min(0).default(24),
    RETENTION_RPC_TIMEOUT_MS: z.coerce.number().int().min(100).default(300_000),
    /** auto: a Kubernetes Job when running in a cluster (KUBERNETES_SERVICE_HOST set), otherwise in this process. */
    RETENTION_RUNNER: z.enum(['auto', 'in-process', 'kubernetes']).default('auto'),
    /** The retention CronJob whose template a compliance-triggered run's Job copies. */
    RETENTION_CRONJOB_NAME: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a Kubernetes object name').default('ally-retention'),
    KUBERNETES_SERVICE_HOST: z.string().optional(),
    KUBERNETES_SERVICE_PORT: z.coerce.number().int().min(1).max(65535).optional(),
    /** From the downward API; defaults to the service account's namespace file. */
    POD_NAMESPACE: z.string().optional(),
    K8S_SERVICEACCOUNT_DIR: z.string().default('/var/run/secrets/kubernetes.io/serviceaccount'),
  })
  .superRefine((c, ctx) => {
    requireInProduction(c, ctx, ['PRIVACY_KEK', 'PRIVACY_SUBJECT_SALT', 'PRIVACY_AUDIT_KEY']);
    // A step still waiting for its service when its lease runs out is taken again: the service would do it twice at once.
    if (c.PRIVACY_STEP_TIMEOUT_MS >= c.PRIVACY_STEP_LEASE_MS) {
      ctx.addIssue({ code: 'custom', path: ['PRIVACY_STEP_TIMEOUT_MS'], message: `must be shorter than PRIVACY_STEP_LEASE_MS (${c.PRIVACY_STEP_LEASE_MS})` });
    }
  });

export type PrivacyConfig = z.infer<typeof privacyConfigSchema>;
export const PRIVACY_CONFIG = Symbol('PRIVACY_CONFIG');
