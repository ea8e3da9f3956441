import { describe, expect, it } from '@jest/globals';
import { loadConfig } from '@ally/platform';
import { privacyConfigSchema } from './config.js';

describe('privacy configuration', () => {
  const env = { NODE_ENV: 'development', DATABASE_URL: 'postgres://ally_privacy@127.0.0.1:5432/ally' };

  it('refuses a step timeout that reaches the step lease: a step still waiting for its service would be taken again and done twice at once', () => {
    expect(() => loadConfig(privacyConfigSchema, { ...env, PRIVACY_STEP_TIMEOUT_MS: '120000', PRIVACY_STEP_LEASE_MS: '120000' })).toThrow(/PRIVACY_STEP_TIMEOUT_MS.*shorter than PRIVACY_STEP_LEASE_MS/);
    expect(loadConfig(privacyConfigSchema, { ...env, PRIVACY_STEP_TIMEOUT_MS: '60000', PRIVACY_STEP_LEASE_MS: '120000' }).PRIVACY_STEP_TIMEOUT_MS).toBe(60_000);
  });
});
