import { describe, expect, it } from '@jest/globals';
import { loadConfig } from '@ally/platform';
import { gatewayConfigSchema } from './config.js';

describe('gateway configuration', () => {
  const env = { NODE_ENV: 'development' };
  const load = (vars: Record<string, string>) => loadConfig(gatewayConfigSchema, { ...env, ...vars });

  it('takes CORS_ORIGINS as origins only: one with a path, a trailing slash or * (which allowed no origin at all) is named at start', () => {
    expect(load({ CORS_ORIGINS: 'https://app.example.eu, http://localhost:5173' }).CORS_ORIGINS).toEqual(['https://app.example.eu', 'http://localhost:5173']);
    expect(() => load({ CORS_ORIGINS: 'https://app.example.eu/' })).toThrow(/CORS_ORIGINS.*"https:\/\/app\.example\.eu\/" is not an origin/);
    expect(() => load({ CORS_ORIGINS: '*' })).toThrow(/CORS_ORIGINS.*"\*" is not an origin/);
    // An app's own scheme, as it sends it.
    expect(load({ CORS_ORIGINS: 'capacitor://localhost,chrome-extension://abcdefghijklmnop' }).CORS_ORIGINS).toEqual(['capacitor://localhost', 'chrome-extension://abcdefghijklmnop']);
  });

  it('takes TRUSTED_PROXIES as addresses, CIDRs and the names Fastify knows: a wrong entry is named, not a failed start naming no variable', () => {
    expect(load({ TRUSTED_PROXIES: '10.0.0.0/8, loopback, 2001:db8::/32, 192.0.2.7' }).TRUSTED_PROXIES).toEqual(['10.0.0.0/8', 'loopback', '2001:db8::/32', '192.0.2.7']);
    expect(load({ TRUSTED_PROXIES: 'none' }).TRUSTED_PROXIES).toEqual([]);
    expect(load({}).TRUSTED_PROXIES).toEqual(['loopback', 'linklocal', 'uniquelocal']);
    expect(() => load({ TRUSTED_PROXIES: 'foo' })).toThrow(/TRUSTED_PROXIES.*"foo" is not an address/);
    expect(() => load({ TRUSTED_PROXIES: '10.0.0.0/33' })).toThrow(/TRUSTED_PROXIES.*"10\.0\.0\.0\/33"/);
    expect(() => load({ TRUSTED_PROXIES: '0.0.0.0/0' })).toThrow(/TRUSTED_PROXIES.*"0\.0\.0\.0\/0"/);
    expect(load({ TRUSTED_PROXIES: '10.0.0.0/255.0.0.0' }).TRUSTED_PROXIES).toEqual(['10.0.0.0/255.0.0.0']);
  });
});
