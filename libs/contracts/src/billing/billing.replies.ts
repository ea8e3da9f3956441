import { z } from 'zod';
import { replyTime } from '../common/replies.js';

export const planReply = z.strictObject({
  id: z.string(),
  name: z.string(),
  currency: z.string(),
  pricePerSeat: z.number().int().describe("per seat and month, in the currency's minor unit (cents)"),
  monthlyTokensPerSeat: z.number().int().describe("tokens per seat and month (the workspace's quota is this times its seats)"),
  selfService: z.boolean(),
});
export type Plan = z.infer<typeof planReply>;

export const subscriptionReply = z.strictObject({
  workspace: z.string(),
  plan: z.string(),
  status: z.string(),
  currentPeriodEnd: replyTime.nullable(),
  seats: z.number().int(),
  cancelAtPeriodEnd: z.boolean(),
});
export type SubscriptionView = z.infer<typeof subscriptionReply>;

export const usageReply = z.strictObject({
  period: z.string().describe('YYYY-MM'),
  tokensUsed: z.number().int(),
  tokenQuota: z.number().int().nullable().describe('the quota of that month (null for a month before quotas were recorded, or one without any record of the workspace)'),
  byModel: z.array(z.strictObject({ model: z.string(), tokens: z.number().int(), cost: z.number() })),
});
export type UsageView = z.infer<typeof usageReply>;

export const invoiceReply = z.strictObject({
  id: z.string(),
  number: z.string().nullable(),
  status: z.string(),
  currency: z.string(),
  subtotal: z.number().int(),
  tax: z.number().int(),
  total: z.number().int(),
  amountPaid: z.number().int(),
  createdAt: replyTime,
  hostedInvoiceUrl: z.string().nullable(),
});
export type InvoiceView = z.infer<typeof invoiceReply>;

/** Where the browser goes next: Stripe Checkout or the Customer Portal. */
export const redirectUrlReply = z.strictObject({ url: z.string() });

export const capReply = z.strictObject({
  workspace: z.string(),
  userId: z.string().nullable().describe("the member's cap, or null for the whole workspace's"),
  monthlyTokens: z.number().int().nullable().describe('null: no cap'),
});

export const webhookReceivedReply = z.strictObject({ received: z.literal(true), duplicate: z.boolean() });

export interface QuotaAnswer {
  allowed: boolean;
  /** Which limit was hit, when not allowed. */
  reason?: string;
  /** Tokens left under the tightest limit (quota, workspace cap, the member's cap), when allowed. */
  remaining?: number;
}
