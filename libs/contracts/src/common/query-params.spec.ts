import { describe, expect, it } from '@jest/globals';
import { z } from 'zod';
import { pageParams } from './query-params.js';

describe('page parameters from a query string', () => {
  const page = z.strictObject(pageParams);

  it('take a limit written in decimal digits, and refuse hex, blanks, exponents and fractions', () => {
    expect(page.parse({ limit: '7' }).limit).toBe(7);
    expect(page.parse({}).limit).toBe(20);
    expect(page.parse({ limit: 50 }).limit).toBe(50);
    for (const limit of ['0x10', ' 5', '5 ', '1e1', '2.0', '', '-1', '0', '101']) expect({ limit, ok: page.safeParse({ limit }).success }).toEqual({ limit, ok: false });
  });
});
