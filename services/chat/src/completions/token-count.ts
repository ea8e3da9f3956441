import { countTokens } from 'gpt-tokenizer';
import type { PromptMessage } from '../content-filter/content-filter.service.js';

/** A special token's spelling in a user's text (`<|endoftext|>`) is ordinary text to count, never a reason to fail. */
const AS_TEXT = { disallowedSpecial: new Set<string>() };
/** Per message, the chat format's own tokens (role, separators). */
const PER_MESSAGE = 4;

export const textTokens = (text: string): number => countTokens(text, AS_TEXT);

export const promptTokens = (messages: PromptMessage[]): number => messages.reduce((n, m) => n + textTokens(m.content) + PER_MESSAGE, 0);

/** An upper bound of `promptTokens` without counting (a token is at least one byte): the common case needs no more. */
export const promptBytes = (messages: PromptMessage[]): number => messages.reduce((n, m) => n + Buffer.byteLength(m.content) + PER_MESSAGE, 0);
