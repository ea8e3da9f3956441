import { ArgumentsHost, Catch, HttpException, type ExceptionFilter } from '@nestjs/common';
import { throwError } from 'rxjs';
import { ZodError } from 'zod';
import type { Logger } from 'pino';
import { fieldErrors, invalidInput, isProblem, problemTitle, ProblemError, type Problem } from '@ally/contracts';
import { isDatabaseUnavailable } from '@ally/persistence';

/** Turns anything thrown into a problem; an unexpected error is a 500 and is logged, never leaked. */
export function toProblem(err: unknown, logger: Logger): Problem {
  if (err instanceof ProblemError) return err.toProblem();
  if (isProblem(err)) return err;
  if (err instanceof ZodError) {
    return invalidInput(fieldErrors(err), 'input').toProblem();
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
    // Not the message: a provider may quote what it was sent (an address, a name) in it.
    const { type, requestId } = e as { type?: string; requestId?: string };
    logger.error({ err: { statusCode: e.statusCode, code: e.code, type, requestId } }, 'a provider refused or failed a call');
    const refused = typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500 && e.statusCode !== 429;
    return refused
      ? { type: 'about:blank', title: problemTitle(502), status: 502, detail: 'A provider Ally relies on refused the request; please try again later' }
      : { type: 'about:blank', title: problemTitle(503), status: 503, detail: 'A provider Ally relies on is not answering; please try again shortly' };
  }
  // Fastify's own errors (body too large, bad JSON, wrong content type) carry a 4xx statusCode.
  if (typeof e?.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return { type: 'about:blank', title: problemTitle(e.statusCode), status: e.statusCode, detail: e.message };
  }
  // The service's own database is down or out of reach: a dependency, not a bug; the caller may try again shortly.
  if (isDatabaseUnavailable(err)) {
    logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'the database is not available');
    return { type: 'about:blank', title: problemTitle(503), status: 503, detail: 'A service Ally relies on is not available; please try again shortly', retryAfter: 5 };
  }
  logger.error({ err: err instanceof Error ? { message: err.message, stack: err.stack } : String(err) }, 'unhandled error');
  return { type: 'about:blank', title: problemTitle(500), status: 500, detail: 'An unexpected error occurred' };
}

/** OpenAI's error types by status, as its SDK and clients branch on them. */
const OPENAI_TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  402: 'insufficient_quota',
  403: 'permission_error',
  404: 'not_found_error',
  409: 'conflict_error',
  413: 'invalid_request_error',
  415: 'invalid_request_error',
  422: 'invalid_request_error',
  429: 'rate_limit_error',
};

/** The last path segment of an Ally problem type (`…/problems/context-length-exceeded`) as OpenAI spells codes. */
const openAiCode = (problem: Problem) => (problem.type.startsWith('https://') ? problem.type.split('/').at(-1)!.replaceAll('-', '_') : null);

/** OpenAI's `{ error: { message, type, param, code } }` for a problem: the one place it is made (HTTP answers and SSE frames alike). */
export function openAiError(problem: Problem) {
  return {
    message: problem.detail ?? problem.title,
    type: OPENAI_TYPES[problem.status] ?? (problem.status >= 500 ? 'server_error' : 'invalid_request_error'),
    param: problem.errors?.[0]?.field ?? null,
    code: openAiCode(problem),
  };
}

/** Ally's routes that OpenAI's SDK calls: chat completions and models. */
const OPENAI_ROUTES = /^\/v1\/(chat|models)([/?]|$)/;

/**
 * Whether an error answers an OpenAI client: on Ally's OpenAI-compatible
 * routes, or on a /v1 path no route serves (the SDK's embeddings, responses
 * and the rest of OpenAI's API, which keeps growing, hear their 404 in its shape).
 */
const forOpenAiClient = (req: { url?: string; is404?: boolean }): boolean =>
  OPENAI_ROUTES.test(req.url ?? '') || (req.is404 === true && (req.url ?? '').startsWith('/v1/'));

/**
 * One filter for both transports: over NATS the problem is the error reply;
 * over HTTP it becomes `application/problem+json`. To an OpenAI client the
 * problem also carries OpenAI's `error` member, whoever raised it (a route,
 * the body parser, the rate limit, the 404): the official SDK reads message,
 * type, param and code only from there (without it `err.message` was the raw
 * JSON and `err.type` "about:blank").
 */
@Catch()
export class ProblemFilter implements ExceptionFilter {
  constructor(private readonly logger: Logger) {}

  catch(err: unknown, host: ArgumentsHost) {
    const problem = toProblem(err, this.logger);
    if (host.getType() === 'rpc') return throwError(() => problem);
    const http = host.switchToHttp();
    const reply = http.getResponse();
    if (problem.retryAfter) reply.header('retry-after', String(problem.retryAfter));
    const { retryAfter: _omit, ...body } = problem;
    const openAi = forOpenAiClient(http.getRequest());
    reply
      .status(problem.status)
      .header('content-type', 'application/problem+json')
      .send(openAi ? { ...body, error: openAiError(body) } : body);
  }
}
