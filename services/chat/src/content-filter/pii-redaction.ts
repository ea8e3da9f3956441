import { INVISIBLE_CHARS } from '@ally/contracts';

/**
 * Personal data taken out of a prompt before it leaves the EU: e-mail
 * addresses, IBANs, payment card numbers and phone numbers become
 * `[email]`, `[iban]`, `[card]`, `[phone]`. Candidates are found by loose
 * patterns and kept only when they check out (an IBAN's country length and
 * mod-97, a card's Luhn digit, a phone number's prefix and digit count), so
 * ISBNs, dates, prices, years and part numbers reach the model as written.
 *
 * A rejected candidate consumes nothing: the scan goes on from its next
 * character, and a candidate that runs on into other numbers is cut back to
 * its longest valid start. Otherwise a false candidate ("Ab 2024 …") could
 * swallow the real IBAN or phone number written after it.
 *
 * Every pattern is linear: each repetition is bounded or delimited by a
 * separator, so no run of digits or letters can be split in many ways.
 *
 * The patterns read a normalised copy (see `readable`): full-width digits and
 * letters, Unicode spaces and invisible characters typed or pasted into a
 * number are found as well. Only what is found is replaced in the text itself.
 */

/** Spaces (after normalisation mostly U+0020) and a tab, as pasted from a table. */
const S = '[\\t\\p{Zs}]';
/** Dashes as word processors and fonts write them: hyphen-minus, hyphen, non-breaking hyphen, figure dash, en dash, minus. */
const DASH = '\\-\\u2010-\\u2013\\u2212';
/** One line break, spaces either side: a number wrapped by an editor or a mail client. */
const BR = `${S}?(?:\\r\\n|[\\n\\r\\u2028])${S}?`;

/** Combining marks (\p{M}) included: an address pasted in NFD spells "ü" as u + U+0308. */
const EMAIL = /(?<![\p{L}\p{M}\p{N}._%+-])[\p{L}\p{M}\p{N}._%+-]+@[\p{L}\p{M}\p{N}-]+(?:\.[\p{L}\p{M}\p{N}-]+)*\.\p{L}[\p{L}\p{M}]+/gu;

/** Two letters, two check digits, then 10–30 letters or digits, in any grouping: up to two spaces, a dash or a line break. */
const ISEP = `(?:${S}{1,2}|${S}?[${DASH}]${S}?|${BR})`;
const IBAN_CANDIDATE = new RegExp(`\\b[A-Za-z]{2}${ISEP}?\\d{2}(?:${ISEP}?[A-Za-z0-9]){10,30}\\b`, 'gu');

/** IBAN lengths of the SEPA countries (ISO 13616 registry). */
const IBAN_LENGTHS: Record<string, number> = {
  AD: 24, AT: 20, BE: 16, BG: 22, CH: 21, CY: 28, CZ: 24, DE: 22, DK: 18, EE: 20, ES: 24, FI: 18, FO: 18, FR: 27, GB: 22, GI: 23, GL: 18,
  GR: 27, HR: 21, HU: 28, IE: 22, IS: 26, IT: 27, LI: 21, LT: 20, LU: 20, LV: 21, MC: 27, MT: 31, NL: 18, NO: 15, PL: 28, PT: 25, RO: 24,
  SE: 24, SI: 19, SK: 24, SM: 27, VA: 22,
};

/**
 * 13–19 digits as cards are written: in one run, in groups of four (the last
 * shorter), or 4-6-5 / 4-6-4 (American Express, Diners), separated by any
 * number of spaces, dots or dashes, or by a line break. Not after or before a
 * digit and a dot or dash: 1.4111… is a decimal, 2024-… a date.
 */
const CS = `(?:[\\t\\p{Zs}.${DASH}]+|${BR})`;
const CARD_CANDIDATE = new RegExp(
  `(?<!\\d|\\d[.${DASH}])(?:\\d{13,19}|\\d{4}(?:${CS}\\d{4}){2,3}(?:${CS}\\d{1,4})?|\\d{4}${CS}\\d{6}${CS}\\d{4,5})(?!\\d|[.${DASH}]\\d)`,
  'gu',
);

/**
 * International (+ or 00, then the country code; the code may be in
 * parentheses, a trunk or area code too: +49 (0)30 …, +1 (555) …) or national
 * (0, then an area or mobile prefix, as in Germany, Austria and Switzerland;
 * the prefix perhaps in parentheses). Groups separated by one or two spaces,
 * by a dot, slash or dash with a space either side, or by a line break;
 * nationally no dots (01.02.2024 is a date). Not inside a word or number:
 * preceded by neither a letter or digit nor a digit and a separator.
 */
const PSEP = `(?:${S}{1,2}|${S}?[./${DASH}]${S}?|${BR})`;
const NSEP = `(?:${S}{1,2}|${S}?[/${DASH}]${S}?|${BR})`;
const PHONE_CANDIDATE = new RegExp(
  `(?<![\\p{L}\\p{N}+]|\\p{N}[./${DASH}])(?:` +
    `(?:\\((?:\\+|00)[1-9]\\d{0,3}\\)|(?:\\+|00)[1-9]\\d{0,13})(?:${PSEP}?\\(\\d{1,5}\\)${PSEP}?\\d{1,12})?(?:${PSEP}\\d{1,12}){0,6}` +
    `|(?:\\(0[1-9]\\d{0,4}\\)${S}?\\d{1,12}|0[1-9]\\d{0,12})(?:${NSEP}\\d{1,12}){0,6}` +
    `)(?![\\p{L}\\p{N}]|[.:]\\d)`,
  'gu',
);

/** Where a card candidate may be cut back: between any two groups. */
const CARD_CUTS = /(?<=\d)\D+(?=\d)/g;
/** Where a phone candidate may be cut back: before a group that starts a number of its own (0170 1234567 0170 7654321). */
const PHONE_CUTS = /(?<=\d)[^\d(]+(?=0\d)/g;
/** Day, month and year (01/02/2024, 01-02-24, 03–12–2024): national-looking, but a date. */
const DATE = new RegExp(`^\\d{1,2}${S}?([./${DASH}])${S}?\\d{1,2}${S}?\\1${S}?\\d{2,4}$`, 'u');
/** Where a candidate's line ends (after its last digit there). */
const LINE_END = new RegExp(`(?<=\\d)${BR}`, 'gu');

function ibanValid(candidate: string): boolean {
  const iban = candidate.replace(/[^A-Za-z0-9]/g, '').toUpperCase();
  if (IBAN_LENGTHS[iban.slice(0, 2)] !== iban.length) return false;
  // ISO 13616: the first four characters to the end, letters as 10–35, the number mod 97 is 1.
  let rest = 0;
  for (const ch of iban.slice(4) + iban.slice(0, 4)) {
    const value = ch >= 'A' ? ch.charCodeAt(0) - 55 : Number(ch);
    rest = (value > 9 ? rest * 100 + value : rest * 10 + value) % 97;
  }
  return rest === 1;
}

/** The candidate may run on into the words after it: the IBAN is as many characters as its country's length, and ends a group. */
function ibanLength(candidate: string): number {
  const length = IBAN_LENGTHS[candidate.slice(0, 2).toUpperCase()];
  if (!length) return 0;
  let end = 0;
  for (let seen = 0; end < candidate.length && seen < length; end++) if (/[A-Za-z0-9]/.test(candidate[end])) seen++;
  if (end < candidate.length && /[A-Za-z0-9]/.test(candidate[end])) return 0;
  return ibanValid(candidate.slice(0, end)) ? end : 0;
}

function luhnValid(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = Number(digits[digits.length - 1 - i]);
    if (i % 2 === 1 && (d *= 2) > 9) d -= 9;
    sum += d;
  }
  return sum % 10 === 0;
}

function cardValid(candidate: string): boolean {
  const digits = candidate.replace(/\D/g, '');
  return (
    digits.length >= 13 &&
    digits.length <= 19 &&
    // Payment cards begin with 2–6 (and UnionPay's 81): millisecond timestamps (17…), ISBNs (978…) and 0… numbers are no cards.
    /^(?:[2-6]|81)/.test(digits) &&
    // All one digit (5555 5555 …) may pass Luhn but is no card.
    !/^(\d)\1*$/.test(digits) &&
    luhnValid(digits)
  );
}

function phoneValid(candidate: string): boolean {
  const digits = candidate.replace(/\D/g, '');
  if (/^\(?(?:\+|00)/.test(candidate)) {
    // E.164: country code and number, 8–15 digits here; the 00 and a written trunk "(0)" not counted.
    const n = digits.length - (/^\(?00/.test(candidate) ? 2 : 0) - (/\(0\)/.test(candidate) ? 1 : 0);
    return n >= 8 && n <= 15;
  }
  // Nationally 8–14 digits with the 0. A subscriber number never begins with 0, so "01067 01069" (postcodes) and
  // "01 02 03 04" (a list) are no numbers; nor is a date.
  return digits.length >= 8 && digits.length <= 14 && !/^\(?0\d+\)?\D+0/.test(candidate) && !DATE.test(candidate);
}

/**
 * The longest start of `candidate`, whole or cut back at one of `cuts`, that
 * is `valid`; 0 if none is. A line break ends a number that is whole before
 * it: "030 1234567⏎2. Schritt" keeps its "2", "…⏎10117 Berlin" its postcode.
 */
function longestValid(candidate: string, cuts: RegExp, valid: (s: string) => boolean): number {
  for (const m of candidate.matchAll(LINE_END)) if (valid(candidate.slice(0, m.index))) return m.index;
  if (valid(candidate)) return candidate.length;
  const ends = Array.from(candidate.matchAll(cuts), (m) => m.index);
  for (let i = ends.length - 1; i >= 0; i--) if (valid(candidate.slice(0, ends[i]))) return ends[i];
  return 0;
}

/** Invisible in a number or address: format characters (U+200B, U+00AD, U+2060, U+200E …) and the fillers that show nothing. */
const INVISIBLE = new RegExp(`[${INVISIBLE_CHARS}]`, 'u');

/**
 * `text` as the patterns read it, and for each of its UTF-16 units where in
 * `text` the character it came from begins: each character in its
 * compatibility form (NFKC: "４" is 4, "＠" @, a thin or ideographic space a
 * space), invisible ones left out. Character by character, so that a match
 * maps back; the text itself is not normalised, since NFKC would also turn
 * "m²" into "m2" and dropping U+200C/U+200D would break Persian words and
 * emoji that reach the model.
 */
function readable(text: string): { read: string; from: (i: number) => number } {
  // Most text is already as the patterns read it: then it is its own copy.
  if (!INVISIBLE.test(text) && text.normalize('NFKC') === text) return { read: text, from: (i) => i };
  let read = '';
  const from: number[] = [];
  let at = 0;
  for (const ch of text) {
    const form = ch < '\u00a0' ? ch : INVISIBLE.test(ch) ? '' : ch.normalize('NFKC');
    read += form;
    for (let i = 0; i < form.length; i++) from.push(at);
    at += ch.length;
  }
  return { read, from: (i) => from[i] };
}

interface Found {
  start: number;
  end: number;
  placeholder: string;
}

/** Stands in for what was found, so that later patterns neither read it nor join it with what is around: no letter, digit, space or separator. */
const TAKEN = '\ufffc';

/**
 * Each candidate of `pattern` (global) that `accept` takes (the length it
 * takes, 0 for none) added to `found` and blanked in the returned text. A
 * rejected candidate consumes nothing: the scan resumes at its next
 * character, where the patterns' look-behinds let only the start of another
 * group begin a new candidate.
 */
function findWhere(text: string, pattern: RegExp, accept: (candidate: string) => number, placeholder: string, found: Found[]): string {
  let out = '';
  let last = 0;
  pattern.lastIndex = 0;
  for (let m = pattern.exec(text); m; m = pattern.exec(text)) {
    const length = accept(m[0]);
    if (length > 0) {
      found.push({ start: m.index, end: m.index + length, placeholder });
      out += text.slice(last, m.index) + TAKEN.repeat(length);
      last = pattern.lastIndex = m.index + length;
    } else {
      pattern.lastIndex = m.index + 1;
    }
  }
  return out + text.slice(last);
}

/**
 * E-mail addresses, IBANs, card and phone numbers replaced by placeholders, in
 * that order: a number taken as IBAN or card is no phone. Found in the
 * readable copy, replaced in `text` (with any invisible characters inside
 * them); everything else stays as written.
 */
export function redactPii(text: string): string {
  const { read, from } = readable(text);
  const found: Found[] = [];
  let rest = findWhere(read, EMAIL, (c) => c.length, '[email]', found);
  rest = findWhere(rest, IBAN_CANDIDATE, ibanLength, '[iban]', found);
  rest = findWhere(rest, CARD_CANDIDATE, (c) => longestValid(c, CARD_CUTS, cardValid), '[card]', found);
  findWhere(rest, PHONE_CANDIDATE, (c) => longestValid(c, PHONE_CUTS, phoneValid), '[phone]', found);

  let out = '';
  let pos = 0;
  for (const { start, end, placeholder } of found.sort((a, b) => a.start - b.start)) {
    const last = from(end - 1);
    out += text.slice(pos, from(start)) + placeholder;
    pos = last + (text.codePointAt(last)! > 0xffff ? 2 : 1);
  }
  return out + text.slice(pos);
}
