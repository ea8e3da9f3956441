import { z } from 'zod';
import { rpc } from './rpc.js';

/** Which data a data-subject request covers: everything, the private workspace, or one organisation. */
export const privacyScopeSchema = z.union([z.literal('all'), z.literal('private'), z.uuid()]);

export const privacySubjectInput = z.strictObject({
  userId: z.uuid(),
  scope: privacyScopeSchema.default('all'),
  /** The data-subject request this belongs to, for the audit trail. */
  requestId: z.uuid().optional(),
});

export interface PrivacyExport {
  service: string;
  /** One entry per data category: what is held, as JSON. */
  categories: Record<string, unknown>;
}

export interface PrivacyErasure {
  service: string;
  /** Rows deleted (or anonymised) per data category. */
  affected: Record<string, number>;
}

/** The RPCs every service holding personal data answers: `ally.rpc.<svc>.privacy.export` / `.erase`. */
export const privacyRpcs = (service: string) => ({
  export: rpc<PrivacyExport>()(`ally.rpc.${service}.privacy.export`, privacySubjectInput, { authenticated: false }),
  erase: rpc<PrivacyErasure>()(`ally.rpc.${service}.privacy.erase`, privacySubjectInput, { authenticated: false }),
});
