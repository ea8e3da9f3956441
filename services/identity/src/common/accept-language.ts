import type { Locale } from '@ally/contracts';

/**
 * The language of ours (de, en) an Accept-Language header ranks highest by q-value, the earlier on a tie;
 * undefined when it names neither (`*` included), so the caller's own default applies.
 */
export function preferredLocale(header: string | undefined): Locale | undefined {
  let best: { locale: Locale; q: number } | undefined;
  for (const entry of (header ?? '').split(',')) {
    const [range, ...params] = entry.toLowerCase().split(';').map((p) => p.trim());
    const locale = range.split('-')[0];
    if (locale !== 'de' && locale !== 'en') continue;
    const q = Number(params.find((p) => p.startsWith('q='))?.slice(2) ?? 1);
    if (q > 0 && q <= 1 && (!best || q > best.q)) best = { locale, q };
  }
  return best?.locale;
}
