/**
 * Personal data taken out of a prompt before it leaves the EU: e-mail
 * addresses, IBANs, payment card numbers and phone numbers become
 * `[email]`, `[iban]`, `[card]`, `[phone]`. Candidates are found by loose
 * patterns and kept only when they check out (an IBAN's mod-97, a card's
 * Luhn digit, a phone number's shape), so ISBNs, dates, prices, years and
 * part numbers reach the model as written. Every pattern is linear: no
 * nested repetition a long run of digits or letters could make explode.
 */

/** Tried only where a run of address characters begins (from every character of a long run, each try read it to its end). */
const EMAIL = /(?<![\p{L}\p{N}._%+-])[\p{L}\p{N}._%+-]+@[\p{L}\p{N}-]+(?:\.[\p{L}\p{N}-]+)*\.\p{L}{2,}/gu;

/** Two letters, two check digits, then 10–30 letters or digits, single or double spaces between groups allowed. */
const IBAN_CANDIDATE = /\b[A-Za-z]{2}[ ]{0,2}\d{2}(?:[ ]{0,2}[A-Za-z0-9]){10,30}\b/g;

/** IBAN lengths of the SEPA countries (ISO 13616 registry). */
const IBAN_LENGTHS: Record<string, number> = {
  AD: 24, AT: 20, BE: 16, BG: 22, CH: 21, CY: 28, CZ: 24, DE: 22, DK: 18, EE: 20, ES: 24, FI: 18, FO: 18, FR: 27, GB: 22, GI: 23, GL: 18,
  GR: 27, HR: 21, HU: 28, IE: 22, IS: 26, IT: 27, LI: 21, LT: 20, LU: 20, LV: 21, MC: 27, MT: 31, NL: 18, NO: 15, PL: 28, PT: 25, RO: 24,
  SE: 24, SI: 19, SK: 24, SM: 27, VA: 22,
};

/** 13–19 digits as cards are written: in one run, in groups of four (the last shorter), or 4-6-5 (American Express). */
const SEP = '(?:[ .-]|[ ]{2})';
const CARD_CANDIDATE = new RegExp(`(?<![\\d.-])(?:\\d{13,19}|\\d{4}(?:${SEP}\\d{4}){2,3}(?:${SEP}\\d{1,4})?|\\d{4}${SEP}\\d{6}${SEP}\\d{4,5})(?![\\d.-]?\\d)`, 'g');

/**
 * International (+ or 00 and a country code) or national (a leading 0: an
 * area or mobile prefix, as in Germany, Austria and Switzerland) numbers,
 * the prefix perhaps in parentheses, groups separated by a space, dot, slash
 * or dash (nationally no dots: 01.02.2024 is a date).
 */
const PHONE_CANDIDATE =
  /(?<![\p{L}\p{N}+./-])(?:(?:\+|00)[1-9]\d{0,2}[ ./-]?(?:\(0?\d{1,5}\)|\d{1,5})(?:[ ./-]{0,2}\d{1,8}){1,5}|(?=\(?0)(?:\(0\d{1,5}\)|0\d{1,5})(?:[ /-]{0,2}\d{1,8}){1,5})(?![\p{L}\p{N}]|[.:]\d)/gu;

function ibanValid(candidate: string): boolean {
  const iban = candidate.replace(/ /g, '').toUpperCase();
  if (IBAN_LENGTHS[iban.slice(0, 2)] !== iban.length) return false;
  // ISO 13616: the first four characters to the end, letters as 10–35, the number mod 97 is 1.
  let rest = 0;
  for (const ch of iban.slice(4) + iban.slice(0, 4)) {
    const value = ch >= 'A' ? ch.charCodeAt(0) - 55 : Number(ch);
    rest = (value > 9 ? rest * 100 + value : rest * 10 + value) % 97;
  }
  return rest === 1;
}

/** The candidate may run on into the words after it: the IBAN is as many characters as its country's length. */
function redactIban(candidate: string): string {
  const length = IBAN_LENGTHS[candidate.slice(0, 2).toUpperCase()];
  if (!length) return candidate;
  let end = 0;
  for (let seen = 0; end < candidate.length && seen < length; end++) if (candidate[end] !== ' ') seen++;
  if (end < candidate.length && candidate[end] !== ' ') return candidate;
  return ibanValid(candidate.slice(0, end)) ? `[iban]${candidate.slice(end)}` : candidate;
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
  // All one digit (0000 0000 …) passes Luhn but is no card.
  return digits.length >= 13 && digits.length <= 19 && !/^(\d)\1*$/.test(digits) && luhnValid(digits);
}

function phoneValid(candidate: string): boolean {
  const digits = candidate.replace(/\D/g, '');
  const international = /^\s*(?:\+|00)/.test(candidate);
  // A national number: a 0 prefix, then 6–13 more digits (030 1234567, 0170 1234567); internationally 8–15 in all.
  if (international) return digits.length - (candidate.trimStart().startsWith('00') ? 2 : 0) >= 8 && digits.length <= 17;
  return /^\(?0[1-9]/.test(candidate) && digits.length >= 8 && digits.length <= 14;
}

/** E-mail addresses, IBANs, card and phone numbers replaced by placeholders. */
export function redactPii(text: string): string {
  return text
    .replace(EMAIL, '[email]')
    .replace(IBAN_CANDIDATE, redactIban)
    .replace(CARD_CANDIDATE, (m) => (cardValid(m) ? '[card]' : m))
    .replace(PHONE_CANDIDATE, (m) => (phoneValid(m) ? '[phone]' : m));
}
