import { z } from 'zod';
import { ProblemError, type FieldError } from './problem.js';

const valueAt = (root: unknown, path: PropertyKey[]): unknown =>
  path.reduce<unknown>((v, key) => (v !== null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[key] : undefined), root);

/**
 * One entry per bad field, in the caller's terms: each unknown field is named
 * as the field, not as "(body)" (`unknown` says what it is not: a known field,
 * a known query parameter); given the input, a missing field "is required"
 * (not "expected string, received undefined").
 */
export function fieldErrors(error: z.ZodError, input?: unknown, unknown = 'is not a known field'): FieldError[] {
  const name = (path: PropertyKey[]) => (path.length ? path.map(String).join('.') : '(body)');
  return error.issues.flatMap((issue): FieldError[] => {
    if (issue.code === 'unrecognized_keys') return issue.keys.map((key) => ({ field: name([...issue.path, key]), message: unknown }));
    // A record's key that fails its schema: that schema's message, not "Invalid key in record".
    if (issue.code === 'invalid_key') return [{ field: name(issue.path), message: issue.issues[0]?.message ?? issue.message }];
    const missing =
      input !== undefined &&
      issue.path.length > 0 &&
      (issue.code === 'invalid_type' || issue.code === 'invalid_union' || issue.code === 'invalid_value') &&
      valueAt(input, issue.path) === undefined;
    return [{ field: name(issue.path), message: missing ? 'is required' : issue.message }];
  });
}

/** Parses at a boundary; bad input becomes a 400 naming every bad field. */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown, what = 'request body'): z.infer<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const errors = fieldErrors(result.error, value, what === 'query' ? 'is not a known query parameter' : undefined);
  // `?limit=1&limit=2` arrives as a list: that it came twice is what is wrong with it.
  if (what === 'query' && value && typeof value === 'object') {
    for (const e of errors) if (Array.isArray((value as Record<string, unknown>)[e.field])) e.message = 'is given more than once';
  }
  throw invalidInput(errors, what);
}

/**
 * An RPC's input as the service that answers it reads it: a key it does not
 * know is dropped, not refused. In a rolling upgrade callers of the next
 * release send fields this one has no use for yet (a cancel subject, a
 * retention run's deadline), which a 400 would turn into failed requests until
 * the rollout ends. The public API's unknown keys are refused at the gateway,
 * which checks bodies and queries with the same schemas (`parseInput`).
 * Keys inside a union's options are still refused (zod reports them as the
 * union failing): a field a later release adds goes on an object, not in one.
 */
export function parseRpcInput<S extends z.ZodType>(schema: S, value: unknown, what = 'request body'): z.infer<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const unknown = result.error.issues.filter((issue) => issue.code === 'unrecognized_keys');
  if (unknown.length === 0) return parseInput(schema, value, what);
  const known = structuredClone(value);
  for (const issue of unknown) {
    const holder = valueAt(known, issue.path) as Record<string, unknown>;
    for (const key of issue.keys) delete holder[key];
  }
  return parseInput(schema, known, what);
}

/** The most bad fields an answer names: 50,000 unknown keys in one body are not 50,000 entries back. */
const NAMED_AT_MOST = 20;

/** The 400 for bad fields, naming them (the first NAMED_AT_MOST, and how many more). */
export function invalidInput(errors: FieldError[], what = 'request body'): ProblemError {
  const named = errors.slice(0, NAMED_AT_MOST);
  const more = errors.length - named.length;
  return new ProblemError(400, `Invalid ${what}: ${named.map((e) => `${e.field} (${e.message})`).join('; ')}${more ? `; and ${more} more` : ''}`, { errors: named });
}

/**
 * An id (a UUID) in its one spelling, lower case: text columns (workspaces,
 * API keys' scopes) and events compare it as written, so an id sent in
 * capitals would otherwise miss the rows it names.
 */
export const idSchema = (message: string) => z.uuid(message).toLowerCase();

/**
 * A billing workspace as services name it to each other: an organisation's id, or `private:<user id>` (every user
 * has a private workspace of their own), in lower case.
 */
export const WORKSPACE_KEY = /^(private:)?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
