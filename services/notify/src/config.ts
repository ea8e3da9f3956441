import { z } from 'zod';
import { baseConfigSchema, databaseConfigSchema, publicBaseUrlSchema, requireInProduction, requireOwnAddressInProduction, requirePublicUrlInProduction } from '@ally/platform';

export const notifyConfigSchema = baseConfigSchema
  .extend(databaseConfigSchema.shape)
  .extend({
    /** Brevo's transactional API key. Without one, development and tests use the emulator at BREVO_BASE_URL. */
    BREVO_API_KEY: z.string().min(1).optional(),
    /** Brevo's API (the default with a key); without a key, the emulator's, which must be given. */
    BREVO_BASE_URL: z.url().optional(),
    /** Shared secret Brevo's webhook presents (Authorization: Bearer or ?token=). */
    BREVO_WEBHOOK_SECRET: z.string().min(16, 'must be at least 16 characters').optional(),
    /** Keys the hashes the delivery log and the suppression list keep instead of addresses (required in production; never change it). */
    NOTIFY_ADDRESS_KEY: z.string().min(16, 'must be at least 16 characters').optional(),
    MAIL_SENDER_EMAIL: z.email().default('no-reply@ally.eu'),
    MAIL_SENDER_NAME: z.string().default('Ally'),
    /** The compliance team's address, for data-subject requests escalated before their due date (required in production). */
    COMPLIANCE_EMAIL: z.email().optional(),
    PUBLIC_BASE_URL: publicBaseUrlSchema,
    /** First retry delay; doubles per attempt up to NOTIFY_RETRY_MAX_MS (a Retry-After from Brevo wins when longer). */
    NOTIFY_RETRY_BASE_MS: z.coerce.number().int().min(1).default(2_000),
    NOTIFY_RETRY_MAX_MS: z.coerce.number().int().min(1).default(300_000),
    /** How long a mail Brevo could not take (5xx, 429, the network) is tried again before it is dead. */
    NOTIFY_GIVE_UP_HOURS: z.coerce.number().positive().default(24),
    NOTIFY_POLL_MS: z.coerce.number().int().min(10).default(500),
    /**
     * Mails of one kind to one address in an hour, required ones included: whoever controls an account (an address
     * never confirmed, say) cannot turn settings changes or reset requests into a flood at someone's inbox, and
     * a flood of one kind takes nothing from the others. Mails nobody can trigger at will and nobody may lose
     * (legally owed ones, compliance escalations, the warning of a new sign-in) are exempt.
     */
    NOTIFY_MAX_PER_ADDRESS_PER_HOUR: z.coerce.number().int().min(1).default(20),
  })
  .superRefine((c, ctx) => {
    // Production never falls back to the emulator, nor drops a data-subject request's escalation for want of an address.
    requireInProduction(c, ctx, ['BREVO_API_KEY', 'BREVO_WEBHOOK_SECRET', 'COMPLIANCE_EMAIL', 'NOTIFY_ADDRESS_KEY']);
    // The links in mails carry tokens: to the deployment's own host only; and from a sender Brevo will take.
    requirePublicUrlInProduction(c, ctx, 'PUBLIC_BASE_URL');
    requireOwnAddressInProduction(c, ctx, 'MAIL_SENDER_EMAIL', 'a sender of your domain, verified in Brevo');
    requireOwnAddressInProduction(c, ctx, 'COMPLIANCE_EMAIL', "your compliance team's address");
    // Without a key, mail (addresses, names, links) must not go to Brevo's real API, which would refuse it only after receiving it.
    if (c.NODE_ENV !== 'production' && !c.BREVO_API_KEY && !c.BREVO_BASE_URL) {
      ctx.addIssue({ code: 'custom', path: ['BREVO_BASE_URL'], message: "is required without BREVO_API_KEY: the Brevo emulator's URL (npm start sets it)" });
    }
  })
  .transform((c) => ({ ...c, BREVO_BASE_URL: c.BREVO_BASE_URL ?? 'https://api.brevo.com/v3' }));

export type NotifyConfig = z.infer<typeof notifyConfigSchema>;
export const NOTIFY_CONFIG = Symbol('NOTIFY_CONFIG');

/** True when mail goes to the Brevo emulator, not to Brevo. */
export const usesEmulator = (c: NotifyConfig): boolean => !c.BREVO_API_KEY;
