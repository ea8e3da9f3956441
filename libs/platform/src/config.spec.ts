import { describe, expect, it } from '@jest/globals';
import { publicBaseUrlSchema } from './config.js';

describe('PUBLIC_BASE_URL', () => {
  it('loses a trailing slash however written, so that paths can be appended (Stripe sent people to //billing/success)', () => {
    expect(publicBaseUrlSchema.parse('https://ally.example.eu/')).toBe('https://ally.example.eu');
    expect(publicBaseUrlSchema.parse('https://ally.example.eu//')).toBe('https://ally.example.eu');
    expect(publicBaseUrlSchema.parse('https://ally.example.eu/app/')).toBe('https://ally.example.eu/app');
    expect(publicBaseUrlSchema.parse(undefined)).toBe('http://localhost:3000');
    expect(publicBaseUrlSchema.safeParse('ally.example.eu').success).toBe(false);
  });
});
