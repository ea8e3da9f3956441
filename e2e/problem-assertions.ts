import { expect } from '@jest/globals';
import type { HttpResult } from '@ally/testing';

/** Internals that must never reach a caller in an error answer. */
const LEAK = /QueryFailedError|TypeError|ReferenceError|RangeError|SyntaxError: Unexpected|ECONNREFUSED|\bSELECT\b|\bINSERT\b|\bat .+:\d+:\d+|node_modules|Internal error/;

/**
 * The answer is an RFC 9457 problem with this status: `application/problem+json`,
 * `type`, `title`, `status`, a `detail` that says what is wrong, a request id,
 * and, for each named field, an entry in `errors` (and, for validation, a
 * mention in `detail`).
 */
export function expectProblem(res: HttpResult, status: number, fields: string[] = []): void {
  const seen = { status: res.status, contentType: res.headers.get('content-type')?.split(';')[0], body: res.body };
  expect(seen).toMatchObject({
    status,
    contentType: 'application/problem+json',
    body: { type: expect.any(String), title: expect.any(String), status, detail: expect.any(String) },
  });
  expect(res.body.detail).not.toMatch(LEAK);
  expect(res.body.stack).toBeUndefined();
  expect(res.headers.get('x-request-id')).toBeTruthy();
  if (fields.length) {
    expect(Array.isArray(res.body.errors)).toBe(true);
    const named = (res.body.errors as { field: string; message: string }[]).map((e) => e.field);
    // A validation answer ("Invalid request body: email (…)") names the fields in its detail too.
    const validation = /^Invalid /.test(res.body.detail);
    for (const field of fields) {
      expect({ detail: res.body.detail, fields: named }).toEqual({ detail: validation ? expect.stringContaining(field) : expect.any(String), fields: expect.arrayContaining([field]) });
    }
    for (const e of res.body.errors) expect(e).toEqual({ field: expect.any(String), message: expect.any(String) });
  }
}
