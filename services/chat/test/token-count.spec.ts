import { describe, expect, it } from '@jest/globals';
import { trimToWindow } from '../src/completions/completion.service.js';
import { promptTokens, textTokens } from '../src/completions/token-count.js';

/** A user may type what a tokenizer calls a special token; it is text like any other (it threw, and so answered 500). */
describe('token counts', () => {
  const special = 'Was bedeutet <|endoftext|> oder <|im_start|> in einem Prompt?';

  it("counts a special token's spelling as text", () => {
    expect(textTokens(special)).toBeGreaterThan(10);
    expect(promptTokens([{ role: 'user', content: special }])).toBe(textTokens(special) + 4);
  });

  it('trims a history holding special tokens to the window by counting, newest turns kept', () => {
    const history = Array.from({ length: 40 }, (_, i) => ({ role: (i % 2 ? 'assistant' : 'user') as 'user' | 'assistant', content: `${i} ${special}` }));
    const kept = trimToWindow([{ role: 'system', content: 'Sei hilfreich.' }, ...history], 200);
    expect(kept[0]).toEqual({ role: 'system', content: 'Sei hilfreich.' });
    expect(kept.at(-1)).toEqual(history.at(-1));
    expect(kept.length).toBeLessThan(history.length);
    expect(promptTokens(kept)).toBeLessThanOrEqual(200);
  });
});
