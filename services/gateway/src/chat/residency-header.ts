import type { ResidencyReceipt } from '@ally/contracts';

/** The header that repeats a completion's residency receipt (API.md). */
export const RESIDENCY_HEADER = 'x-ally-residency';

/**
 * The receipt as JSON in printable ASCII, every other character as a \uXXXX
 * escape, so `JSON.parse` of the header gives the receipt back. Node refuses a
 * header holding characters above U+00FF (and DEL and controls), and the
 * receipt repeats the organisation's policy, which its owner writes.
 */
export function residencyHeaderValue(receipt: ResidencyReceipt): string {
  return JSON.stringify(receipt).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
