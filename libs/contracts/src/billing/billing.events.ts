import { z } from 'zod';

export const BillingEvents = {
  'billing.subscription.changed': z.object({
    workspace: z.string(),
    plan: z.string(),
    status: z.string(),
    seats: z.number().int(),
    /** Cancelled in the Customer Portal: runs until currentPeriodEnd, then ends (optional: absent in events of earlier releases). */
    cancelAtPeriodEnd: z.boolean().optional(),
    currentPeriodEnd: z.string().nullable().optional(),
    ownerEmail: z.string().nullable(),
    locale: z.enum(['de', 'en']),
  }),
  'billing.payment.failed': z.object({ workspace: z.string(), invoiceId: z.string(), ownerEmail: z.string().nullable(), locale: z.enum(['de', 'en']) }),
  /** 80 % and 100 % of a workspace's monthly quota, once per period and level. */
  'billing.quota.threshold-reached': z.object({ workspace: z.string(), period: z.string(), percent: z.union([z.literal(80), z.literal(100)]), ownerEmail: z.string().nullable(), locale: z.enum(['de', 'en']) }),
  'billing.meter.discrepancy-found': z.object({ workspace: z.string(), period: z.string(), ledgerTokens: z.number(), stripeTokens: z.number() }),
} as const;
