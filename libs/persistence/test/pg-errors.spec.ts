import { describe, expect, it } from '@jest/globals';
import { isDatabaseUnavailable } from '../src/pg-errors.js';

describe(isDatabaseUnavailable.name, () => {
  it('takes a database that is down, restarting, failing over or out of connections for unavailable (503, retried), not the request', () => {
    for (const code of ['08006', '57P01', '25006', '53300', 'ECONNREFUSED']) expect({ code, unavailable: isDatabaseUnavailable({ code }) }).toEqual({ code, unavailable: true });
    // As TypeORM wraps it, and as pg-pool says it without a code.
    expect(isDatabaseUnavailable({ driverError: { code: '25006' } })).toBe(true);
    expect(isDatabaseUnavailable(new Error('timeout exceeded when trying to connect'))).toBe(true);
  });

  it("leaves the request's own faults to it", () => {
    for (const code of ['23505', '23503', '22P02', '42P01']) expect(isDatabaseUnavailable({ code })).toBe(false);
    expect(isDatabaseUnavailable(new Error('syntax error at or near "x"'))).toBe(false);
  });
});
