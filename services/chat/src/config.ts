import { z } from 'zod';
import { base64Key32, baseConfigSchema, databaseConfigSchema, requireInProduction } from '@ally/platform';
import { STREAM_HEARTBEAT_MS, STREAM_SILENCE_LIMIT_MS } from '@ally/contracts';

export const chatConfigSchema = baseConfigSchema
  .extend(databaseConfigSchema.shape)
  .extend({
    /** JSON file listing the model deployments (see services/chat/config/). */
    MODEL_CATALOG_FILE: z.string().min(1),
    /** Model used when a request names none and its assistant has none. */
    DEFAULT_MODEL: z.string().min(1).default('gpt-4o-mini'),
    /** 32 bytes, base64: wraps each user's data key (AES-256-GCM). */
    CHAT_KEK: base64Key32.optional(),
    /**
     * Earlier (or, while a rotation rolls out, the next) key-encryption keys, comma-separated: chat opens data keys
     * and reads erasure marks under them but wraps nothing new with them (`rewrap-data-keys` moves keys to CHAT_KEK).
     */
    CHAT_KEK_UNWRAP_ONLY: z
      .string()
      .default('')
      .transform((v) => v.split(',').map((k) => k.trim()).filter(Boolean))
      .pipe(z.array(base64Key32)),
    /** Redact e-mail, phone, IBAN and card numbers from prompts that leave the EU. */
    REDACT_PII_OUTSIDE_EU: z.enum(['true', 'false']).default('true').transform((v) => v === 'true'),
    PROVIDER_TIMEOUT_MS: z.coerce.number().int().min(100).default(60_000),
    /**
     * How long a prompt waits for its moderation: a safeguard, not a dependency (an endpoint that does not answer
     * lets the prompt through), so a stalled one must not hold every prompt for the provider's timeout.
     */
    MODERATION_TIMEOUT_MS: z.coerce.number().int().min(100).default(5_000),
    /** How long a stream may wait for the gateway's acknowledgement before it is abandoned. */
    STREAM_ACK_TIMEOUT_MS: z.coerce.number().int().min(100).default(30_000),
    /**
     * Tokens that follow another within this many ms travel to the gateway as one
     * delta (the first of an answer never waits); 0 sends every token on its own.
     */
    STREAM_COALESCE_MS: z.coerce.number().int().min(0).max(200).default(20),
    /** The longest a stream stays silent while the model thinks: a heartbeat frame then (the gateway gives up after STREAM_SILENCE_LIMIT_MS). */
    STREAM_HEARTBEAT_MS: z.coerce.number().int().min(100).max(STREAM_SILENCE_LIMIT_MS / 3).default(STREAM_HEARTBEAT_MS),
    /** `billing` asks billing's quota RPC before each call; `none` allows everything (tests of chat alone). */
    QUOTA_PROVIDER: z.enum(['billing', 'none']).default('billing'),
    QUOTA_CACHE_MS: z.coerce.number().int().min(0).default(5_000),
    /**
     * How often a deployment configured as EU that reported a region outside the EU is probed (a request without
     * personal data) to find out whether it serves in the EU again; until then EU-only callers do not reach it.
     */
    OUTSIDE_EU_RECHECK_MS: z.coerce.number().int().min(100).default(15 * 60_000),
    /** Assistants one workspace may have (a user's private ones, an organisation's): each may hold 20,000 characters of instructions. */
    MAX_ASSISTANTS_PER_WORKSPACE: z.coerce.number().int().min(1).default(200),
  })
  .superRefine((c, ctx) => {
    requireInProduction(c, ctx, ['CHAT_KEK']);
    // Without CHAT_KEK, new keys would be wrapped under the development key, which no deployment keeps.
    if (c.CHAT_KEK_UNWRAP_ONLY.length && !c.CHAT_KEK) ctx.addIssue({ code: 'custom', path: ['CHAT_KEK_UNWRAP_ONLY'], message: 'needs CHAT_KEK, the key new data keys are wrapped under' });
  });

export type ChatConfig = z.infer<typeof chatConfigSchema>;
export const CHAT_CONFIG = Symbol('CHAT_CONFIG');
