import { z } from 'zod';
import { baseConfigSchema, databaseConfigSchema, publicBaseUrlSchema, requireInProduction, requirePublicUrlInProduction } from '@ally/platform';

export const billingConfigSchema = baseConfigSchema
  .extend(databaseConfigSchema.shape)
  .extend({
    STRIPE_SECRET_KEY: z.string().regex(/^(sk|rk)_(test|live)_/, 'must be a Stripe secret key (sk_…)').optional(),
    /** Only for the emulator: where Stripe's API is (http://127.0.0.1:8127). */
    STRIPE_API_URL: z.url().optional(),
    STRIPE_WEBHOOK_SECRET: z.string().startsWith('whsec_', 'must be a Stripe webhook secret (whsec_…)').optional(),
    /** Seconds a webhook's signature timestamp may be old. */
    STRIPE_WEBHOOK_TOLERANCE_SECONDS: z.coerce.number().int().min(1).default(300),
    STRIPE_METER_EVENT_NAME: z.string().default('ally_tokens'),
    STRIPE_METER_ID: z.string().optional(),
    PLANS_FILE: z.string().min(1),
    PUBLIC_BASE_URL: publicBaseUrlSchema,
    METER_REPORT_BATCH: z.coerce.number().int().min(1).max(1000).default(100),
    /** Meter events in flight to Stripe at once: one after the other, a round trip of ~100 ms to Stripe would cap reporting near 10/s. */
    METER_REPORT_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(8),
    METER_POLL_MS: z.coerce.number().int().min(10).default(1_000),
    QUOTA_REFRESH_MS: z.coerce.number().int().min(10).default(500),
    /** Keys the pseudonym an erased subject's books keep (HMAC-SHA256); required in production. */
    BILLING_PSEUDONYM_KEY: z.string().min(16, 'must be at least 16 characters').optional(),
    /** How often the ledger is reconciled with Stripe's meter summaries; 0 turns the timer off (the `reconcile` command still works). */
    RECONCILE_INTERVAL_MS: z.coerce.number().int().min(0).default(86_400_000),
    /**
     * Checkout has Stripe Tax work out the VAT (German VAT, EU reverse charge by the VAT ID it collects): activate
     * Stripe Tax in the Dashboard, or set false when the plans' prices carry tax rates of their own.
     */
    STRIPE_AUTOMATIC_TAX: z.enum(['true', 'false']).default('true').transform((v) => v === 'true'),
    /** A staging deployment run as production may use test-mode keys only when it says so: paid plans for test cards. */
    STRIPE_ALLOW_TEST_KEYS: z.enum(['true', 'false']).default('false').transform((v) => v === 'true'),
  })
  .superRefine((c, ctx) => {
    requireInProduction(c, ctx, ['STRIPE_SECRET_KEY', 'STRIPE_WEBHOOK_SECRET', 'BILLING_PSEUDONYM_KEY']);
    // Stripe sends the customer back here after Checkout and the portal.
    requirePublicUrlInProduction(c, ctx, 'PUBLIC_BASE_URL');
    if (c.NODE_ENV === 'production' && c.STRIPE_SECRET_KEY && /^(sk|rk)_test_/.test(c.STRIPE_SECRET_KEY) && !c.STRIPE_ALLOW_TEST_KEYS) {
      ctx.addIssue({ code: 'custom', path: ['STRIPE_SECRET_KEY'], message: 'is a test-mode key: production takes live keys (sk_live_…), or STRIPE_ALLOW_TEST_KEYS=true for a staging deployment' });
    }
    if (c.NODE_ENV === 'production' && c.STRIPE_API_URL) ctx.addIssue({ code: 'custom', path: ['STRIPE_API_URL'], message: 'must not be set in production (it points at the emulator)' });
    // Without a key the SDK would otherwise go to api.stripe.com with a made-up one, while saying it talks to the emulator.
    if (c.NODE_ENV !== 'production' && !c.STRIPE_SECRET_KEY && !c.STRIPE_API_URL) {
      ctx.addIssue({ code: 'custom', path: ['STRIPE_API_URL'], message: "is required without STRIPE_SECRET_KEY: the Stripe emulator's URL (npm start sets it)" });
    }
  });

export type BillingConfig = z.infer<typeof billingConfigSchema>;
export const BILLING_CONFIG = Symbol('BILLING_CONFIG');
