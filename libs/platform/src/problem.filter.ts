import { ArgumentsHost, Catch, HttpException, type ExceptionFilter } from '@nestjs/common';
import { throwError } from 'rxjs';
import { ZodError } from 'zod';
import type { Logger } from 'pino';
import { fieldErrors, isProblem, problemTitle, ProblemError, type Problem } from '@ally/contracts';

/** Turns anything thrown into a problem; an unexpected error is a 500 and is logged, never leaked. */
export function toProblem(err: unknown, logger: Logger): Problem {
  if (err instanceof ProblemError) return err.toProblem();
  if (isProblem(err)) return err;
  if (err instanceof ZodError) {
    const errors = fieldErrors(err);
    return { type: 'about:blank', title: problemTitle(400), status: 400, detail: 'Invalid input', errors };
  }
  if (err instanceof HttpException) {
    const status = err.getStatus();
    const body = err.getResponse();
    const detail = typeof body === 'string' ? body : ((body as { message?: string | string[] }).message ?? err.message);
    return { type: 'about:blank', title: problemTitle(status), status, detail: Array.isArray(detail) ? detail.join('; ') : String(detail) };
  }
  const e = err as { statusCode?: number; message?: string; code?: string };
  // An SDK's error for a call we made to a provider (Stripe's carry a statusCode, as Fastify's do, beside the provider's
  // raw answer and request id) is not the caller's fault, and the provider's words are not theirs to read.
  if (e && typeof e === 'object' && ('raw' in e || 'requestId' in e)) {
    logger.error({ err: { message: e.message, statusCode: e.statusCode, code: e.code } }, 'a provider refused or failed a call');
    const refused = typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500 && e.statusCode !== 429;
    return refused
      ? { type: 'about:blank', title: problemTitle(502), status: 502, detail: 'A provider Ally relies on refused the request; please try again later' }
      : { type: 'about:blank', title: problemTitle(503), status: 503, detail: 'A provider Ally relies on is not answering; please try again shortly' };
  }
  // Fastify's own errors (body too large, bad JSON, wrong content type) carry a 4xx statusCode.
  if (typeof e?.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return { type: 'about:blank', title: problemTitle(e.statusCode), status: e.statusCode, detail: e.message };
  }
  logger.error({ err: err instanceof Error ? { message: err.message, stack: err.stack } : String(err) }, 'unhandled error');
  return { type: 'about:blank', title: problemTitle(500), status: 500, detail: 'An unexpected error occurred' };
}

/**
 * One filter for both transports: over NATS the problem is the error reply;
 * over HTTP it becomes `application/problem+json`.
 */
@Catch()
export class ProblemFilter implements ExceptionFilter {
  constructor(private readonly logger: Logger) {}

  catch(err: unknown, host: ArgumentsHost) {
    const problem = toProblem(err, this.logger);
    if (host.getType() === 'rpc') return throwError(() => problem);
    const reply = host.switchToHttp().getResponse();
    if (problem.retryAfter) reply.header('retry-after', String(problem.retryAfter));
    const { retryAfter: _omit, ...body } = problem;
    reply.status(problem.status).header('content-type', 'application/problem+json').send(this.body(body));
  }

  /** The HTTP body of a problem; a route family with clients of its own may add to it. */
  protected body(problem: Problem): object {
    return problem;
  }
}
