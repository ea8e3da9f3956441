import { createParamDecorator, type ExecutionContext } from '@nestjs/common';
import { ProblemError, type Actor, type RequestMeta } from '@ally/contracts';
import type { FastifyRequest } from 'fastify';
import type { AuthenticatedRequest } from '../auth/auth.guard.js';

/** The authenticated caller (set by AuthGuard). */
export const CurrentActor = createParamDecorator((_: unknown, ctx: ExecutionContext): Actor => {
  const actor = ctx.switchToHttp().getRequest<AuthenticatedRequest>().actor;
  if (!actor) throw new ProblemError(401, 'Authentication required');
  return actor;
});

/** IP, user agent and request id, passed to services for audit and correlation. */
export const RequestMetaParam = createParamDecorator((_: unknown, ctx: ExecutionContext): RequestMeta => {
  const req = ctx.switchToHttp().getRequest<FastifyRequest>();
  const ua = req.headers['user-agent'];
  return { ip: req.ip, userAgent: typeof ua === 'string' ? ua.slice(0, 300) : undefined, correlationId: String(req.id) };
});
