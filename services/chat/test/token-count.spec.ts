import type { ProblemError } from '@ally/contracts';
import { describe, expect, it } from '@jest/globals';
import { trimToWindow } from '../src/completions/completion.service.js';
import { countTokens } from 'gpt-tokenizer';
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

  it('starts the trimmed history with a question: an answer whose question did not fit goes too', () => {
    const words = (n: number) => 'wort '.repeat(n);
    const messages = [
      { role: 'system' as const, content: 'Sei hilfreich.' },
      { role: 'user' as const, content: `Q1 ${words(150)}` },
      { role: 'assistant' as const, content: `A1 ${words(40)}` },
      { role: 'user' as const, content: 'Q2 Hallo' },
    ];
    // A1 and Q2 fit, Q1 does not: A1 alone would be an answer to nothing.
    expect(trimToWindow(messages, 80).map((m) => m.content.split(' ')[0])).toEqual(['Sei', 'Q2']);
    // A caller's own last message may be an assistant's (a prefill): it stays.
    expect(trimToWindow([...messages, { role: 'assistant' as const, content: 'Gern' }], 20).map((m) => m.content.split(' ')[0])).toEqual(['Sei', 'Gern']);
  });

  it('counts a long unbroken run in linear time, and long ordinary text as closely as in one piece', () => {
    // Counted in one piece, these took the tokenizer 11 s and 41 s.
    expect(textTokens('a'.repeat(100_000))).toBe(12_500);
    expect(textTokens('😀'.repeat(50_000))).toBe(50_000);
    const prose = 'Das ist ein ganz normaler Satz mit Wörtern, Zahlen wie 2026 und Satzzeichen. '.repeat(300);
    const whole = countTokens(prose, { disallowedSpecial: new Set<string>() });
    expect(Math.abs(textTokens(prose) - whole)).toBeLessThanOrEqual(whole * 0.002);
  });

  it('keeps system messages where they stand, refuses when the newest message or the system messages alone do not fit', () => {
    const turn = (role: 'user' | 'assistant', n: number) => ({ role, content: `${n} ${'wort '.repeat(50)}` });
    const messages = [{ role: 'system' as const, content: 'FIRST' }, turn('user', 1), turn('assistant', 2), { role: 'system' as const, content: 'MIDDLE' }, turn('user', 3)];
    expect(trimToWindow(messages, 100).map((m) => m.content.split(' ')[0])).toEqual(['FIRST', 'MIDDLE', '3']);
    // System messages alone fit: nothing to trim, nothing to refuse.
    expect(trimToWindow([{ role: 'system', content: 'wort '.repeat(100) }], 120)).toHaveLength(1);
    expect(() => trimToWindow([{ role: 'system', content: 'wort '.repeat(300) }, turn('user', 1)], 200)).toThrow('longer than the model can read');
    expect(() => trimToWindow([turn('user', 1), { role: 'user', content: 'wort '.repeat(300) }], 200)).toThrow('longer than the model can read');
    // Bad input for this model: a 400 naming the content, not the 413 of a body too large for the API.
    const refusal = (() => {
      try {
        trimToWindow([{ role: 'user', content: 'wort '.repeat(300) }], 200);
      } catch (err) {
        return (err as ProblemError).toProblem();
      }
    })();
    expect(refusal).toMatchObject({ status: 400, type: 'https://ally.eu/problems/context-length-exceeded', errors: [{ field: 'content' }] });
  });
});
