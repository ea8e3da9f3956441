import { describe, expect, it } from '@jest/globals';
import { z } from 'zod';
import { pageParams } from './query-params.js';
import { ProblemError } from './problem.js';
import { parseInput } from './validation.js';

describe('page parameters from a query string', () => {
  const page = z.strictObject(pageParams);

  it('take a limit written in decimal digits, and refuse hex, blanks, exponents and fractions', () => {
    expect(page.parse({ limit: '7' }).limit).toBe(7);
    expect(page.parse({}).limit).toBe(20);
    expect(page.parse({ limit: 50 }).limit).toBe(50);
    for (const limit of ['0x10', ' 5', '5 ', '1e1', '2.0', '', '-1', '0', '101']) expect({ limit, ok: page.safeParse({ limit }).success }).toEqual({ limit, ok: false });
  });

  it('name what is wrong: the range of a limit that is no whole number in it, and a parameter given twice', () => {
    const errorsOf = (query: Record<string, unknown>) => {
      try {
        parseInput(page, query, 'query');
      } catch (err) {
        return (err as ProblemError).toProblem().errors;
      }
      return undefined;
    };
    for (const limit of ['1.5', '1e1', '0', '101']) expect(errorsOf({ limit })).toEqual([{ field: 'limit', message: 'must be a whole number from 1 to 100' }]);
    expect(errorsOf({ limit: ['1', '2'] })).toEqual([{ field: 'limit', message: 'is given more than once' }]);
  });
});
