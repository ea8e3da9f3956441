import { describe, expect, it } from '@jest/globals';
import { ProblemError } from '../common/problem.js';
import { parseInput } from '../common/validation.js';
import { chatCompletionsInput } from './chat.schemas.js';

describe('a compatible chat request’s message content', () => {
  const errorsOf = (content: unknown) => {
    try {
      parseInput(chatCompletionsInput, { model: 'gpt-4o-mini', messages: [{ role: 'user', content }] });
    } catch (err) {
      return (err as ProblemError).toProblem().errors;
    }
    return undefined;
  };

  it('names the limit a text or a list of parts broke, and what Ally takes when it is neither', () => {
    expect(errorsOf('x'.repeat(100_000))).toBeUndefined();
    expect(errorsOf('x'.repeat(100_001))).toEqual([{ field: 'messages.0.content', message: 'must be at most 100000 characters' }]);
    expect(errorsOf(Array.from({ length: 101 }, () => ({ type: 'text', text: 'y' })))).toEqual([{ field: 'messages.0.content', message: 'must hold at most 100 parts' }]);
    expect(errorsOf([{ type: 'text', text: 'y'.repeat(100_001) }])).toEqual([{ field: 'messages.0.content', message: 'must hold parts of at most 100000 characters' }]);
    expect(errorsOf([{ type: 'text', text: 'y'.repeat(60_000) }, { type: 'text', text: 'z'.repeat(60_000) }])).toEqual([
      { field: 'messages.0.content', message: 'its parts together must be at most 100000 characters' },
    ]);
    expect(errorsOf([{ type: 'image_url', image_url: { url: 'https://example.eu/a.png' } }])![0].message).toMatch(/Ally supports text only/);
  });
});
