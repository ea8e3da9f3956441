import rateLimit from '@fastify/rate-limit';
import { RouteConfig } from '@nestjs/platform-fastify';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { withPrefix } from '@ally/contracts';
import { clientNetwork, ExpiringMap } from '@ally/platform';
import type { GatewayConfig } from '../config.js';
import { bearerToken } from './bearer.js';
import { RATE_COUNTS_SUBJECT, SharedRateCounts } from './shared-rate-limits.js';

/** Credential routes (login, register, reset) get the strict per-IP limit instead of the per-user one. */
export const AuthRateLimited = () => RouteConfig({ rateBucket: 'auth' });
/** Routes that store something without a login (a consent decision): a per-IP limit of their own. */
export const ConsentRateLimited = () => RouteConfig({ rateBucket: 'consent' });
/**
 * Checkout and the Customer Portal: a Stripe call each, and a checkout waits its workspace's turn in billing while
 * holding a database connection: a per-user limit of their own, far below the general one.
 */
export const CheckoutRateLimited = () => RouteConfig({ rateBucket: 'checkout' });
/** Stripe's and Brevo's deliveries (signed, checked downstream): a per-IP bucket of their own, a burst never 429'd by the general one. */
export const WebhookRateLimited = () => RouteConfig({ rateBucket: 'webhook' });

type Bucket = 'auth' | 'consent' | 'checkout' | 'webhook';
const bucketOf = (req: FastifyRequest) => (req.routeOptions?.config as { rateBucket?: Bucket } | undefined)?.rateBucket;

const MEMO_MAX_ENTRIES = 10_000;
const MEMO_MAX_TOKEN_LENGTH = 2_048;

/**
 * Bearer credentials that authenticated on this replica lately (the guard
 * says so), the credential itself mapped to the user it proved to be: a token
 * forged with a member's id as its sub must not spend that member's bucket.
 * Bounded: 10,000 credentials of at most 2 KiB.
 */
const proven = new ExpiringMap<string, string>(15 * 60_000, MEMO_MAX_ENTRIES);

/** Called by the guard once a bearer credential checked out as `userId`'s. */
export function credentialProven(token: string, userId: string): void {
  if (token.length <= MEMO_MAX_TOKEN_LENGTH) proven.set(token, `user:${userId}`);
}

/** Called by the guard when a credential is refused: whoever keeps sending it no longer spends its owner's bucket. */
export function credentialRefused(token: string): void {
  proven.delete(token);
}

/**
 * Counted per user once a credential of theirs authenticated here, otherwise
 * per IP: credentials made up afresh for every request (a forged token's new
 * sub) would each have bought a bucket of their own and escaped the limit, or
 * spent someone else's; and a user's API keys and sessions share one bucket
 * (a key each would have multiplied it). Counted by all replicas together
 * (`SharedRateCounts`), which hear the bucket's name: a user id, never a credential.
 */
function rateKey(req: FastifyRequest): string {
  const bucket = bucketOf(req);
  const token = bearerToken(req.headers.authorization);
  const caller = (token && proven.get(token)) || `ip:${clientNetwork(req.ip)}`;
  if (bucket === 'checkout') return `checkout:${caller}`;
  if (bucket) return `${bucket}:${clientNetwork(req.ip)}`;
  return caller;
}

const WINDOW_MS = 60_000;

export async function registerRateLimits(fastify: FastifyInstance, config: GatewayConfig, nats: NatsConnection, logger: Logger): Promise<void> {
  const limits: Record<Bucket, number> = {
    auth: config.AUTH_RATE_LIMIT_PER_MINUTE,
    consent: config.CONSENT_RATE_LIMIT_PER_MINUTE,
    checkout: config.CHECKOUT_RATE_LIMIT_PER_MINUTE,
    webhook: config.WEBHOOK_RATE_LIMIT_PER_MINUTE,
  };
  const counts = new SharedRateCounts(nats, withPrefix(config.NATS_SUBJECT_PREFIX, `${RATE_COUNTS_SUBJECT}.${config.RATE_LIMIT_GROUP}`), WINDOW_MS, logger);
  counts.start();
  fastify.addHook('onClose', async () => counts.stop());
  await fastify.register(rateLimit, {
    global: true,
    timeWindow: WINDOW_MS,
    store: counts.storeClass(),
    max: (req) => {
      const bucket = bucketOf(req);
      return bucket ? limits[bucket] : config.RATE_LIMIT_PER_MINUTE;
    },
    keyGenerator: rateKey,
    // Health probes and metrics scrapes are never limited.
    allowList: (req) => req.url.startsWith('/health/') || req.url === '/metrics',
    errorResponseBuilder: (_req, ctx) => ({
      statusCode: 429,
      message: `Too many requests; retry in ${Math.ceil(ctx.ttl / 1000)} seconds`,
    }),
  });
}
