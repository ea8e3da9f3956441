/**
 * How long a provider asks us to wait, in ms from now, from a header such as
 * HTTP's `Retry-After` or Brevo's `x-sib-ratelimit-reset`: seconds (a fraction
 * allowed), or, where the header allows one (`dates`), an HTTP date. Nothing
 * usable (absent, malformed, negative): undefined; a date already past: 0.
 */
export function waitFromHeader(value: string | null | undefined, { dates = true }: { dates?: boolean } = {}): number | undefined {
  const text = value?.trim();
  if (!text) return undefined;
  // Number(' ') is 0, and Date.parse reads "1.5" as a day of 2001 and "-5" as a year: seconds only when they look
  // like seconds, a date only when it starts with its day's name (as HTTP's three date formats do).
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text) * 1000;
  const at = dates && /^[A-Za-z]{3}/.test(text) ? Date.parse(text) : NaN;
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}
