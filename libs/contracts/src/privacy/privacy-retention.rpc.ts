import { z } from 'zod';
import { rpc } from '../common/rpc.js';

/**
 * What privacy asks every service holding personal data during a retention
 * run: `ally.rpc.<svc>.privacy.retention`. The service deletes (or, where the
 * law needs the record, anonymises) what is older than the period, in small
 * batches, skipping rows of held users, and reports counts per category.
 */
export const retentionCategoryInput = z.strictObject({
  category: z.string().min(1).max(64),
  /** Days since the category's reference time (creation, end of contract…); null: the service's own rule (e.g. per-organisation chat retention). */
  retentionDays: z.number().int().min(0).nullable(),
});

export const privacyRetentionInput = z.strictObject({
  runId: z.uuid().optional(),
  categories: z.array(retentionCategoryInput).min(1),
  /** Count what would go, delete nothing. */
  dryRun: z.boolean(),
  /** Users under a legal hold or a restriction: none of their rows may go (but see heldScopes). */
  heldUserIds: z.array(z.uuid()).default([]),
  /**
   * Users restricted in some workspaces only (`private` or an organisation id), one entry per workspace: a rule
   * that knows a row's workspace keeps only those workspaces' rows of them; any other keeps all their rows.
   */
  heldScopes: z.array(z.strictObject({ userId: z.uuid(), scope: z.string().min(1).max(64) })).default([]),
  /**
   * When to stop taking new batches and answer (before privacy stops waiting):
   * what went is then counted, and the next run goes on from there.
   */
  stopBy: z.iso.datetime().optional(),
  /**
   * The same as a span from the request's arrival, read on the service's own clock (`stopBy` is privacy's:
   * a service whose clock ran ahead stopped before its first batch). Wins over `stopBy`, which older releases read.
   */
  stopWithinMs: z.number().int().min(0).max(3_600_000).optional(),
});
export type PrivacyRetentionInput = z.infer<typeof privacyRetentionInput>;

export interface PrivacyRetentionReport {
  service: string;
  /**
   * One entry per requested category the service holds; `affected` is what was (or, in a dry run, would be)
   * deleted or anonymised; `complete: false` when it stopped at `stopBy` with more to go.
   */
  results: { category: string; affected: number; complete?: boolean }[];
}

export const privacyRetentionRpc = (service: string) =>
  rpc<PrivacyRetentionReport>()(`ally.rpc.${service}.privacy.retention`, privacyRetentionInput, { authenticated: false });

/**
 * What an erasure step may add to `PrivacyErasure`: the processors the service
 * told (Art. 19 GDPR), e.g. billing deleting the Stripe customer, notify the
 * Brevo contact. Optional; without it privacy records the notice as delegated.
 */
export interface PrivacyErasureProcessorReport {
  processorsNotified?: string[];
}
