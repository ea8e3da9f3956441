import { describe, expect, it } from '@jest/globals';
import { answerWaitMs } from './cancellable-call.js';

describe(answerWaitMs.name, () => {
  it("waits COMPLETION_TIMEOUT_MS, or less when the client gives up sooner: its 504 must arrive first", () => {
    // The openai SDK's default (600 s): five seconds before it, capped by the configuration.
    expect(answerWaitMs(590_000, '600')).toBe(590_000);
    expect(answerWaitMs(900_000, '600')).toBe(595_000);
    // A short timeout of the client's: a tenth of it to spare.
    expect(answerWaitMs(590_000, '20')).toBe(18_000);
    expect(answerWaitMs(590_000, '1')).toBe(900);
    // As the Python SDK writes it (X-Stainless-Read-Timeout).
    expect(answerWaitMs(590_000, '30.0')).toBe(27_000);
    expect(answerWaitMs(590_000, '1.5')).toBe(1_350);
  });

  it('ignores a header that is not a count of seconds', () => {
    for (const header of [undefined, '', '0', '-5', '1.', 'abc', ['600', '1'], '9999999', '1e3']) expect(answerWaitMs(590_000, header)).toBe(590_000);
  });
});
