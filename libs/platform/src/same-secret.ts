import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * Whether a secret a caller presented is the expected one, compared in a time
 * that tells neither how much of it matched nor how long it is (both sides as
 * SHA-256 digests). Empty never matches.
 */
export function sameSecret(presented: string, expected: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return presented.length > 0 && expected.length > 0 && timingSafeEqual(digest(presented), digest(expected));
}
