import { Catch, Inject } from '@nestjs/common';
import type { Logger } from 'pino';
import type { Problem } from '@ally/contracts';
import { LOGGER, ProblemFilter } from '@ally/platform';

/** OpenAI's error types by status, as its SDK and clients branch on them. */
const TYPES: Record<number, string> = {
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
const codeOf = (problem: Problem) => (problem.type.startsWith('https://') ? problem.type.split('/').at(-1)!.replaceAll('-', '_') : null);

/** OpenAI's `{ error: { message, type, param, code } }`, for a problem on the OpenAI-compatible routes. */
export function openAiError(problem: Problem) {
  return {
    message: problem.detail ?? problem.title,
    type: TYPES[problem.status] ?? (problem.status >= 500 ? 'server_error' : 'invalid_request_error'),
    param: problem.errors?.[0]?.field ?? null,
    code: codeOf(problem),
  };
}

/**
 * Problems stay problem+json on the OpenAI-compatible routes, with OpenAI's
 * `error` member beside them: the official SDK reads its message, type, param
 * and code from there (without it, `err.message` was the raw JSON and the rest undefined).
 */
@Catch()
export class OpenAiProblemFilter extends ProblemFilter {
  constructor(@Inject(LOGGER) logger: Logger) {
    super(logger);
  }

  protected override body(problem: Problem): object {
    return { ...problem, error: openAiError(problem) };
  }
}
