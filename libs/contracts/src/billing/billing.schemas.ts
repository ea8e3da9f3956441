import { z } from 'zod';
import { pageParams } from '../common/query-params.js';
import { idSchema } from '../common/validation.js';
import { workspaceSchema } from '../identity/identity.schemas.js';

/** A billing month; no books go back before 2000 (year 0000 is no month anyone was billed in). */
export const periodSchema = z.string().regex(/^2\d{3}-(0[1-9]|1[0-2])$/, 'must be a month as YYYY-MM, from 2000 on');

export const billingWorkspaceInput = z.strictObject({ workspace: workspaceSchema });
export const listInvoicesInput = z.strictObject({ workspace: workspaceSchema, ...pageParams });
export const checkoutInput = z.strictObject({ workspace: workspaceSchema, plan: z.string().min(1).max(50) });
export const usageInput = z.strictObject({ workspace: workspaceSchema, period: periodSchema.optional() });
/** A monthly token cap: for one member (`userId`), or the whole workspace when it is absent; null removes it. */
export const capInput = z.strictObject({
  workspace: workspaceSchema,
  userId: idSchema('must be a valid user id').optional(),
  monthlyTokens: z.number().int().min(0).max(1e12).nullable(),
});
/** Stripe's header holds a timestamp and a few signatures: far less. */
export const STRIPE_SIGNATURE_MAX = 2000;
export const stripeWebhookInput = z.strictObject({
  /** The raw body exactly as received, base64: the signature covers the bytes. */
  payload: z.string().max(2_000_000),
  signature: z.string().max(STRIPE_SIGNATURE_MAX),
});
export const quotaCheckInput = z.strictObject({ workspace: z.string(), userId: idSchema('must be a valid user id') });
export const invoiceExportInput = z.strictObject({ period: periodSchema });
