import OpenAI from 'openai';
import { ProblemError } from '@ally/contracts';

/**
 * What a failed provider call may put in a log: the kind of error, its status,
 * code and request id. A provider's message may repeat the prompt (a
 * validation error quoting its input), and a parser's may quote the answer:
 * the user's words, which must not reach the logs. Ally's own problems are ours.
 */
export function providerErrorForLog(err: unknown): Record<string, unknown> {
  if (err instanceof OpenAI.APIError) {
    return { name: err.constructor.name, status: err.status, code: err.code ?? undefined, type: err.type ?? undefined, requestId: err.requestID ?? undefined };
  }
  if (err instanceof ProblemError) return { name: 'ProblemError', status: err.status, detail: err.message };
  if (err instanceof Error) return { name: err.name, code: (err as { code?: unknown }).code };
  return { name: typeof err };
}
