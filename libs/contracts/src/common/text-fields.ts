import { z } from 'zod';

/**
 * A length limit that ends the field's checks when it fails: the patterns
 * after it never see a megabyte of text (their time would grow with it, and
 * the gateway answers no one else meanwhile).
 */
export const tooLong = (max: number) => ({ message: `must be at most ${max} characters`, abort: true });

/**
 * One-line text that is stored and shown (names, terms): no control characters
 * or unpaired surrogates, which Postgres refuses (NUL in text, a lone surrogate
 * in jsonb) or mangles, and which have no business in a name.
 */
const PLAIN_TEXT = /^[^\p{Cc}\p{Cs}]*$/u;
export const plainText = (max: number) =>
  z.string().trim().max(max, tooLong(max)).regex(PLAIN_TEXT, 'must not contain control characters');

/**
 * A name shown to others (an organisation in member lists and invitation
 * mails, an API key): plain text with something visible in it, and none of
 * the invisible or direction-changing characters that would let it pass for
 * another (U+202E turns "ab\u202Ecd" into "abdc").
 */
const NO_DISGUISE = /^[^\u200B\u200E\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFEFF]*$/u;
export const displayName = (max: number, min = 1) =>
  plainText(max)
    // Too short says it once: the checks after it would only repeat that nothing is there.
    .min(min, { message: min === 1 ? 'is required' : `must be at least ${min} characters`, abort: true })
    .regex(NO_DISGUISE, 'must not contain invisible or text-direction characters')
    .regex(/[\p{L}\p{N}]/u, 'must contain a letter or digit');

/** Text of several lines (instructions, reasons): line breaks and tabs are fine, what Postgres refuses is not. */
const STORABLE_TEXT = /^[^\u0000\p{Cs}]*$/u;
const STORABLE_MESSAGE = 'must not contain NUL characters or unpaired surrogates';
export const multilineText = (max: number) =>
  z.string().trim().max(max, tooLong(max)).regex(STORABLE_TEXT, STORABLE_MESSAGE);

/**
 * Text of several lines written to a person (a decision mailed to its
 * subject): line breaks and tabs, but no other control characters (a terminal
 * escape, a bell) and nothing invisible or direction-changing.
 */
const LETTER_TEXT = /^(?:[^\p{Cc}\p{Cs}]|[\n\r\t])*$/u;
export const letterText = (max: number) =>
  multilineText(max)
    .regex(LETTER_TEXT, 'must not contain control characters other than line breaks and tabs')
    .regex(NO_DISGUISE, 'must not contain invisible or text-direction characters');

/** Text kept exactly as sent (no trimming: indentation in code matters), without what UTF-8 would silently turn into another character. */
export const storableText = (max: number) => z.string().max(max, tooLong(max)).regex(STORABLE_TEXT, STORABLE_MESSAGE);

/**
 * Characters that show as nothing, for a regex character class: format
 * characters (U+200B, U+00AD, U+2060 …) and the fillers that render as
 * nothing (Hangul U+115F, U+1160, U+3164, U+FFA0; Mongolian U+180E).
 */
export const INVISIBLE_CHARS = '\\p{Cf}\\u115F\\u1160\\u3164\\uFFA0\\u180E';

/** Something that shows: not a space, a control character or one of INVISIBLE_CHARS. */
export const VISIBLE = new RegExp(`[^\\s\\p{Cc}${INVISIBLE_CHARS}]`, 'u');

/** What a user says to a model: storable, and something to say (a message of invisible characters alone would still be sent and billed). */
export const messageText = (max: number) => storableText(max).regex(VISIBLE, 'must not be empty');

/**
 * A model as users ask for it (the catalog's `model`), in a request and in an
 * organisation's allowed models alike: ASCII only, since the receipt that
 * repeats the policy also travels in an HTTP header.
 */
export const modelIdSchema = z
  .string()
  .trim()
  .min(1, 'must not be empty')
  .max(100, 'must be at most 100 characters')
  .regex(/^[A-Za-z0-9._:@/-]+$/, 'is not a model id (letters, digits and . _ : @ / - only)');
