import rateLimit from '@fastify/rate-limit';
import { RouteConfig } from '@nestjs/platform-fastify';
import { decodeJwt } from 'jose';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { GatewayConfig } from '../config.js';

/** Credential routes (login, register, reset) get the strict per-IP limit instead of the per-user one. */
export const AuthRateLimited = () => RouteConfig({ authRateLimited: true });

const isAuthLimited = (req: FastifyRequest) => (req.routeOptions?.config as { authRateLimited?: boolean } | undefined)?.authRateLimited === true;

/**
 * Counted per user when a bearer token names one (decoded, not verified: a
 * forged token only buys its own bucket and then fails authentication), per
 * API key, or per IP. In-memory per replica, like the gateway itself.
 */
function rateKey(req: FastifyRequest): string {
  if (isAuthLimited(req)) return `auth:${req.ip}`;
  const auth = req.headers.authorization;
  const token = typeof auth === 'string' && auth.startsWith('Bearer ') ? auth.slice(7) : '';
  if (token.startsWith('ally_')) return `key:${token.slice(0, 16)}`;
  if (token) {
    try {
      const sub = decodeJwt(token).sub;
      if (sub) return `user:${sub}`;
    } catch {
      /* not a JWT: falls back to the IP */
    }
  }
  return `ip:${req.ip}`;
}

export async function registerRateLimits(fastify: FastifyInstance, config: GatewayConfig): Promise<void> {
  await fastify.register(rateLimit, {
    global: true,
    timeWindow: 60_000,
    max: (req) => (isAuthLimited(req) ? config.AUTH_RATE_LIMIT_PER_MINUTE : config.RATE_LIMIT_PER_MINUTE),
    keyGenerator: rateKey,
    // Health probes and metrics scrapes are never limited.
    allowList: (req) => req.url.startsWith('/health/') || req.url === '/metrics',
    errorResponseBuilder: (_req, ctx) => ({
      statusCode: 429,
      message: `Too many requests; retry in ${Math.ceil(ctx.ttl / 1000)} seconds`,
    }),
  });
}
