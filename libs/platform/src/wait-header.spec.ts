import { describe, expect, it } from '@jest/globals';
import { waitFromHeader } from './wait-header.js';

describe('waitFromHeader', () => {
  it('reads seconds, whole or fractional, as ms', () => {
    expect(waitFromHeader('30')).toBe(30_000);
    expect(waitFromHeader(' 1.5 ')).toBe(1_500);
    expect(waitFromHeader('0')).toBe(0);
  });

  it('reads an HTTP date as the time until then, a past one as no wait, and only where dates are allowed', () => {
    const inAMinute = new Date(Date.now() + 60_000).toUTCString();
    expect(waitFromHeader(inAMinute)).toBeGreaterThan(58_000);
    expect(waitFromHeader(inAMinute)).toBeLessThanOrEqual(60_000);
    expect(waitFromHeader('Wed, 21 Oct 2015 07:28:00 GMT')).toBe(0);
    expect(waitFromHeader(inAMinute, { dates: false })).toBeUndefined();
  });

  it('says nothing for a header that says nothing usable', () => {
    for (const value of [undefined, null, '', '  ', '-5', 'soon', '1e3', 'NaN']) expect(waitFromHeader(value)).toBeUndefined();
  });
});
