import { z } from 'zod';
import { ProblemError, type FieldError } from './problem.js';

export function fieldErrors(error: z.ZodError): FieldError[] {
  return error.issues.map((issue) => ({
    field: issue.path.length ? issue.path.join('.') : '(body)',
    message: issue.message,
  }));
}

/** Parses at a boundary; bad input becomes a 400 naming every bad field. */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown, what = 'request body'): z.infer<S> {
  const result = schema.safeParse(value);
  if (!result.success) {
    const errors = fieldErrors(result.error);
    throw new ProblemError(400, `Invalid ${what}: ${errors.map((e) => `${e.field} (${e.message})`).join('; ')}`, {
      errors,
    });
  }
  return result.data;
}
