import { isIP } from 'node:net';
import { z } from 'zod';
import { baseConfigSchema, publicBaseUrlSchema } from '@ally/platform';

/** A list of comma-separated entries, each checked: a wrong one is named at start, not met later (or never). */
const listOf = (valid: (entry: string) => boolean, what: string, fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((s) => s.split(',').map((o) => o.trim()).filter(Boolean))
    .superRefine((entries, ctx) => {
      for (const entry of entries.filter((e) => !valid(e))) ctx.addIssue({ code: 'custom', message: `"${entry}" is not ${what}` });
    });

/**
 * scheme://host[:port] exactly, as a browser sends it in Origin: a trailing slash, a path or `*` allowed no origin
 * at all. An app's own scheme (chrome-extension://…, capacitor://localhost) as it is; http(s) as URL writes it.
 */
const isOrigin = (o: string) => /^[a-z][a-z0-9+.-]*:\/\/[^/?#*\s]+$/i.test(o) && (!/^https?:/i.test(o) || (URL.canParse(o) && new URL(o).origin === o));

const PROXY_NAMES = ['loopback', 'linklocal', 'uniquelocal', 'none'];
const isProxy = (p: string) => {
  if (PROXY_NAMES.includes(p)) return true;
  const [address, bits, ...rest] = p.split('/');
  const family = isIP(address);
  if (!family || rest.length) return false;
  // A prefix length (from 1: /0 is refused by the proxy check), or a netmask of the address's family.
  return bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) >= 1 && Number(bits) <= (family === 4 ? 32 : 128)) || isIP(bits) === family;
};

export const gatewayConfigSchema = baseConfigSchema.extend({
  GATEWAY_PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  PUBLIC_BASE_URL: publicBaseUrlSchema,
  JWT_ISSUER: z.string().default('https://ally.eu'),
  JWT_AUDIENCE: z.string().default('ally-api'),
  /** Comma-separated origins allowed by CORS; empty allows none. */
  CORS_ORIGINS: listOf(isOrigin, 'an origin (scheme://host[:port], nothing after it)', ''),
  /**
   * The hops allowed to name the client address in X-Forwarded-For (addresses,
   * CIDRs, or loopback / linklocal / uniquelocal): the ingress, not the client,
   * which could otherwise name a new address per request and escape every
   * per-IP limit. `none`: trust no hop; the peer address is the client.
   */
  TRUSTED_PROXIES: listOf(isProxy, 'an address, a CIDR, loopback, linklocal, uniquelocal or none', 'loopback,linklocal,uniquelocal').transform((proxies) => proxies.filter((p) => p !== 'none')),
  BODY_LIMIT_BYTES: z.coerce.number().int().min(1024).default(1024 * 1024),
  /** Requests per minute per user (or per IP when anonymous). */
  RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(1).default(600),
  /** Requests per minute per IP on the unauthenticated auth routes (login, register, reset). */
  AUTH_RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(1).default(30),
  /** Consent decisions (no login) per IP (IPv6: per /64) and minute, a bucket of their own: a banner's visitors behind one address do not spend the sign-ins'. */
  CONSENT_RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(1).default(60),
  /** Checkouts and Customer Portal sessions per user and minute (each a Stripe call, a checkout a wait in billing). */
  CHECKOUT_RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(1).default(10),
  /** Stripe's and Brevo's webhook deliveries per IP and minute, a bucket of their own. */
  WEBHOOK_RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(1).default(3000),
  /** The gateways that count the rate limits together (replicas of one deployment): one group unless told. */
  RATE_LIMIT_GROUP: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'may hold letters, digits, _ and - (at most 64)').default('gateway'),
  /** How often identity's signing keys are read again, so a withdrawn key stops verifying tokens. */
  JWKS_REFRESH_SECONDS: z.coerce.number().int().min(1).max(3600).default(60),
  /**
   * How long a completion asked for without a stream is waited for (chat stops it then, billing what it generated):
   * just under the openai SDK's own timeout (10 minutes), so a long answer is not cut off before its client would
   * give up, and the gateway's 504 (not to be retried) reaches the client before it gives up and retries; a client
   * that sends its own timeout (`X-Stainless-Timeout`) is answered before that.
   */
  COMPLETION_TIMEOUT_MS: z.coerce.number().int().min(1000).default(590_000),
  /** How long identity's word that a session still runs is kept: an ended session's access tokens stop working within this. */
  SESSION_CHECK_SECONDS: z.coerce.number().min(0).max(900).default(30),
});

export type GatewayConfig = z.infer<typeof gatewayConfigSchema>;
export const GATEWAY_CONFIG = Symbol('GATEWAY_CONFIG');
