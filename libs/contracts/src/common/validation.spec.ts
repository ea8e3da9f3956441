import { describe, expect, it } from '@jest/globals';
import { z } from 'zod';
import { ProblemError } from './problem.js';
import { parseInput, parseRpcInput } from './validation.js';

describe('input at a boundary', () => {
  const schema = z.strictObject({ workspace: z.string().min(1), stream: z.strictObject({ subject: z.string(), window: z.number().int() }).optional() });
  /** What a caller of the next release sends: a field at the top and one inside, that this release does not know. */
  const fromNextRelease = { workspace: 'private', cancel: 'ally.cancel.1', stream: { subject: 's', window: 8, resumeAt: 3 } };

  it('refuses unknown keys from the public API, naming each', () => {
    const err = (() => {
      try {
        parseInput(schema, fromNextRelease);
      } catch (e) {
        return e as ProblemError;
      }
    })();
    expect(err).toBeInstanceOf(ProblemError);
    expect(err!.status).toBe(400);
    expect(err!.extra.errors).toHaveLength(2);
    expect(err!.extra.errors).toEqual(
      expect.arrayContaining([
        { field: 'cancel', message: 'is not a known field' },
        { field: 'stream.resumeAt', message: 'is not a known field' },
      ]),
    );
  });

  it('drops, in an RPC, the keys this release does not know, at any depth, and leaves the caller’s value as it was', () => {
    expect(parseRpcInput(schema, fromNextRelease)).toEqual({ workspace: 'private', stream: { subject: 's', window: 8 } });
    expect(fromNextRelease.stream).toHaveProperty('resumeAt', 3);
  });

  it('still refuses, in an RPC, a known field that is wrong, naming only it', () => {
    expect(() => parseRpcInput(schema, { ...fromNextRelease, workspace: '' })).toThrow(/workspace/);
    expect(() => parseRpcInput(schema, { ...fromNextRelease, workspace: '' })).not.toThrow(/cancel/);
  });
});
