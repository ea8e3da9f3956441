import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { toProblem } from '@ally/platform';

/**
 * Errors raised by Fastify before a route runs (body too large, malformed
 * JSON, wrong content type, rate limit) become problem+json like the rest.
 */
export function registerProblemErrorHandler(fastify: FastifyInstance, logger: Logger): void {
  fastify.setErrorHandler((err, _req, reply) => {
    const { retryAfter: _omit, ...problem } = toProblem(err, logger);
    reply.status(problem.status).header('content-type', 'application/problem+json').send(problem);
  });
}
