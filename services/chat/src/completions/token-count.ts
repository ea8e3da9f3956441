import { countTokens } from 'gpt-tokenizer';
import type { PromptMessage } from '../content-filter/content-filter.service.js';

/** A special token's spelling in a user's text (`<|endoftext|>`) is ordinary text to count, never a reason to fail. */
const AS_TEXT = { disallowedSpecial: new Set<string>() };
/** Per message, the chat format's own tokens (role, separators). */
const PER_MESSAGE = 4;

/**
 * The tokenizer's cost grows with the square of an unbroken run (100,000 of
 * one letter took 11 s, 50,000 emoji 41 s, blocking every other request of
 * the replica), so long text is counted in pieces of at most PIECE
 * characters, cut before a space where there is one: linear, and off by at
 * most a token per cut inside a run.
 */
const PIECE = 512;

export function textTokens(text: string): number {
  if (text.length <= PIECE) return countTokens(text, AS_TEXT);
  let tokens = 0;
  for (let start = 0; start < text.length; ) {
    let end = Math.min(start + PIECE, text.length);
    if (end < text.length) {
      const space = text.lastIndexOf(' ', end);
      if (space > start + PIECE / 2) end = space;
      // Never between the two halves of a surrogate pair.
      else if (isHighSurrogate(text.charCodeAt(end - 1))) end--;
    }
    tokens += countTokens(text.slice(start, end), AS_TEXT);
    start = end;
  }
  return tokens;
}

const isHighSurrogate = (code: number) => code >= 0xd800 && code <= 0xdbff;

/** A message's text beside its content: the calls of tools it made (names and arguments). */
const callsText = (m: PromptMessage): string => (m.tool_calls ? m.tool_calls.map((c) => c.function.name + c.function.arguments).join('') : '');

export const promptTokens = (messages: PromptMessage[]): number =>
  messages.reduce((n, m) => n + textTokens(m.content) + (m.tool_calls ? textTokens(callsText(m)) : 0) + PER_MESSAGE, 0);

/** An upper bound of `promptTokens` without counting (a token is at least one byte): the common case needs no more. */
export const promptBytes = (messages: PromptMessage[]): number =>
  messages.reduce((n, m) => n + Buffer.byteLength(m.content) + (m.tool_calls ? Buffer.byteLength(callsText(m)) : 0) + PER_MESSAGE, 0);
