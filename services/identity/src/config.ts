import { z } from 'zod';
import { base64Key32, baseConfigSchema, databaseConfigSchema, requireInProduction } from '@ally/platform';

const seconds = (def: number) => z.coerce.number().int().positive().default(def);

/** An OIDC provider for single sign-on, from `SSO_PROVIDERS` (JSON array). */
export const ssoProviderSchema = z.object({
  id: z.string().regex(/^[a-z0-9-]{1,40}$/),
  issuer: z.url(),
  clientId: z.string().min(1),
  clientSecret: z.string().min(1).optional(),
  redirectUri: z.url(),
  scope: z.string().default('openid email profile'),
  /** Only for a local provider in development and tests: allows http issuers. */
  allowInsecure: z.boolean().default(false),
});
export type SsoProviderConfig = z.infer<typeof ssoProviderSchema>;

const jsonArray = <T extends z.ZodType>(item: T) =>
  z
    .string()
    .transform((s, ctx) => {
      try {
        return JSON.parse(s);
      } catch {
        ctx.addIssue({ code: 'custom', message: 'must be a JSON array' });
        return z.NEVER;
      }
    })
    .pipe(z.array(item));

export const identityConfigSchema = baseConfigSchema.extend(databaseConfigSchema.shape).extend({
  JWT_ISSUER: z.string().default('https://ally.eu'),
  JWT_AUDIENCE: z.string().default('ally-api'),
  ACCESS_TOKEN_TTL_SECONDS: seconds(900),
  SESSION_IDLE_TTL_SECONDS: seconds(7 * 24 * 3600),
  SESSION_ABSOLUTE_TTL_SECONDS: seconds(30 * 24 * 3600),
  SIGNING_KEY_ROTATION_DAYS: seconds(30),
  /**
   * A new signing key is published this long before anyone signs with it: every identity replica
   * (which reload keys each minute) and every gateway (JWKS_REFRESH_SECONDS) knows it by then.
   * A withdrawal of the old keys (a suspected leak) uses the new one at once.
   */
  SIGNING_KEY_PUBLISH_AHEAD_SECONDS: z.coerce.number().int().min(0).max(240).default(150),
  VERIFICATION_TOKEN_TTL_SECONDS: seconds(24 * 3600),
  RESET_TOKEN_TTL_SECONDS: seconds(3600),
  INVITATION_TTL_SECONDS: seconds(7 * 24 * 3600),
  /** Organisations one account may belong to (its own and joined): every one is a workspace its requests may name. */
  MAX_ORGS_PER_USER: z.coerce.number().int().min(1).default(100),
  /** API keys one account may hold unrevoked. */
  MAX_API_KEYS_PER_USER: z.coerce.number().int().min(1).default(50),
  /** Invitations one person may send in 24 hours, all their organisations together: each is a mail in Ally's name to an address they chose. */
  MAX_INVITATIONS_PER_DAY: z.coerce.number().int().min(1).default(200),
  LOGIN_THROTTLE_WINDOW_SECONDS: seconds(15 * 60),
  LOGIN_MAX_FAILURES_PER_ACCOUNT: seconds(5),
  LOGIN_MAX_FAILURES_PER_IP: seconds(50),
  /** OWASP's floor for argon2id is m=19 MiB, t=2, p=1; lower values are refused. */
  ARGON2_MEMORY_KIB: z.coerce.number().int().min(19_456).default(19_456),
  ARGON2_TIME_COST: z.coerce.number().int().min(2).default(2),
  SSO_PROVIDERS: jsonArray(ssoProviderSchema).default([]),
  /** 32 bytes, base64: seals the private signing keys in the database (AES-256-GCM). */
  IDENTITY_KEK: base64Key32.optional(),
}).superRefine((c, ctx) => {
  requireInProduction(c, ctx, ['IDENTITY_KEK']);
});

export type IdentityConfig = z.infer<typeof identityConfigSchema>;
export const IDENTITY_CONFIG = Symbol('IDENTITY_CONFIG');
