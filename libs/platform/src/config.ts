import { z } from 'zod';

/** Variables every service reads. Each service extends this with its own. */
export const baseConfigSchema = z.object({
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  HTTP_HOST: z.string().default('0.0.0.0'),
  /** Health and metrics port (the gateway serves them, and its API, on GATEWAY_PORT instead). */
  HTTP_PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  NATS_URL: z.string().regex(/^(nats|tls):\/\/\S+$/, 'must look like nats://host:4222').default('nats://127.0.0.1:4222'),
  NATS_USER: z.string().optional(),
  NATS_PASSWORD: z.string().optional(),
  NATS_CREDS: z.string().optional(),
  NATS_SUBJECT_PREFIX: z.string().regex(/^[A-Za-z0-9_-]*$/, 'may hold letters, digits, - and _ only').default(''),
  /** 3 in a cluster. */
  NATS_STREAM_REPLICAS: z.coerce.number().int().min(1).max(5).default(1),
  SHUTDOWN_GRACE_MS: z.coerce.number().int().min(0).default(10_000),
  /** How long a call to another service waits for its answer (calls that do more, a completion or a retention run, say their own). */
  RPC_TIMEOUT_MS: z.coerce.number().int().min(100).default(10_000),
});

/**
 * Where users reach Ally (links in mails, Stripe's way back, the OpenAPI
 * server), without a trailing slash however it was written, so a path can be
 * appended to it.
 */
export const publicBaseUrlSchema = z
  .url()
  .default('http://localhost:3000')
  .transform((url) => url.replace(/\/+$/, ''));

export const databaseConfigSchema = z.object({
  /** The service's own login role; it can touch only its schema. */
  DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/, error: 'must be a postgres:// URL' }),
  /** Only for `migrate`: a role that may create the service's role and schema. */
  DATABASE_ADMIN_URL: z.url({ protocol: /^postgres(ql)?$/, error: 'must be a postgres:// URL' }).optional(),
  DATABASE_POOL_SIZE: z.coerce.number().int().min(1).max(100).default(10),
});

/** A key-encryption key from the environment: 32 bytes, base64. */
export const base64Key32 = z
  .string()
  .refine((v) => Buffer.from(v, 'base64').length === 32, 'must be 32 bytes, base64-encoded (openssl rand -base64 32)');

/**
 * For a config's `superRefine`: in production each of `names` must be set
 * (credentials, keys); elsewhere the service falls back to an emulator or a
 * development key and says so.
 */
export function requireInProduction<C extends { NODE_ENV: string }>(c: C, ctx: z.RefinementCtx, names: (keyof C & string)[]): void {
  if (c.NODE_ENV !== 'production') return;
  for (const name of names) if (!c[name]) ctx.addIssue({ code: 'custom', path: [name], message: 'is required in production' });
}

/** Hosts that stand for "put yours here": the manifests' placeholders, and the names reserved for examples (RFC 2606). */
const PLACEHOLDER_HOST = /(^|\.)(example\.(eu|com|org|net)|example|invalid|test)$/i;
const LOOPBACK_HOST = /^(localhost|127(\.\d+){3}|\[::1\])$/i;

/**
 * In production, a public address people are sent to (the links in mails, Stripe's return pages) is the
 * deployment's own over HTTPS: not the development default (localhost), nor a placeholder the manifests ship,
 * which would send tokens to a host that is not ours.
 */
export function requirePublicUrlInProduction<C extends { NODE_ENV: string }>(c: C, ctx: z.RefinementCtx, name: keyof C & string): void {
  if (c.NODE_ENV !== 'production') return;
  const url = new URL(String(c[name]));
  if (LOOPBACK_HOST.test(url.hostname)) ctx.addIssue({ code: 'custom', path: [name], message: `must be the deployment's public address in production, not ${url.hostname}` });
  else if (PLACEHOLDER_HOST.test(url.hostname)) ctx.addIssue({ code: 'custom', path: [name], message: `is still a placeholder (${url.hostname}): put in the deployment's public address` });
  else if (url.protocol !== 'https:') ctx.addIssue({ code: 'custom', path: [name], message: 'must use https in production' });
}

/** In production, an email address of the deployment's own (`what` says whose), not one of the manifests' placeholders. */
export function requireOwnAddressInProduction<C extends { NODE_ENV: string }>(c: C, ctx: z.RefinementCtx, name: keyof C & string, what: string): void {
  if (c.NODE_ENV !== 'production' || !c[name]) return;
  const domain = String(c[name]).split('@').pop() ?? '';
  if (PLACEHOLDER_HOST.test(domain)) ctx.addIssue({ code: 'custom', path: [name], message: `is still a placeholder (${domain}): put in ${what}` });
}

export type BaseConfig = z.infer<typeof baseConfigSchema>;
export type DatabaseConfig = z.infer<typeof databaseConfigSchema>;

/** A problem that stops start-up, reported as one line without a stack trace. */
export class StartupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StartupError';
  }
}

/** Parses the environment once at boot; the first bad variable stops the process with a line naming it. */
export function loadConfig<S extends z.ZodType>(schema: S, env: Record<string, string | undefined>): z.infer<S> {
  // Empty strings mean "not set", as in most .env files.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const result = schema.safeParse(cleaned);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const name = issue.path.join('.') || '(environment)';
  const missing = issue.code === 'invalid_type' && cleaned[name] === undefined;
  throw new StartupError(
    missing ? `Configuration error: ${name} is missing` : `Configuration error: ${name} ${issue.message}`,
  );
}
