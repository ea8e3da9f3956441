import { describe, expect, it } from '@jest/globals';
import { parseRetentionArgs } from './privacy.service.js';

describe('retention-run arguments', () => {
  it('reads the documented options', () => {
    expect(parseRetentionArgs(['--dry-run', '--categories', 'login-audit, sessions'])).toEqual({ dryRun: true, scheduled: false, categories: ['login-audit', 'sessions'], runId: undefined });
    expect(parseRetentionArgs(['--scheduled'])).toEqual({ dryRun: false, scheduled: true, categories: undefined, runId: undefined });
    const id = '01a2488b-14c5-7561-97ac-7f0a63903556';
    expect(parseRetentionArgs(['--run-id', id]).runId).toBe(id);
  });

  it('refuses a mistyped flag or a stray word instead of running for real', () => {
    for (const args of [['-dry-run'], ['dry-run'], ['--dry-run', 'login-audit'], ['--dryrun'], ['--dry-run=true']]) {
      expect(() => parseRetentionArgs(args)).toThrow(/usage: retention-run/);
    }
  });

  it('refuses an option without its value, an empty category list and a run id that is not one', () => {
    expect(() => parseRetentionArgs(['--categories'])).toThrow(/--categories needs a value/);
    expect(() => parseRetentionArgs(['--categories', '--dry-run'])).toThrow(/--categories needs a value/);
    expect(() => parseRetentionArgs(['--dry-run', '--categories', ','])).toThrow(/at least one category/);
    expect(() => parseRetentionArgs(['--run-id', 'nope'])).toThrow(/--run-id must be a run's id/);
  });
});
