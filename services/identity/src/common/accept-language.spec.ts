import { describe, expect, it } from '@jest/globals';
import { preferredLocale } from './accept-language.js';

describe(preferredLocale.name, () => {
  it('takes the first of de and en by q-value, whatever the region', () => {
    expect(preferredLocale('en-GB,en;q=0.8')).toBe('en');
    expect(preferredLocale('fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7, *;q=0.5')).toBe('en');
    expect(preferredLocale('en;q=0.3, DE-at;q=0.9')).toBe('de');
    expect(preferredLocale('de, en')).toBe('de');
  });

  it('names neither for a header without de or en, a refused one (q=0), a wildcard or none', () => {
    for (const header of ['fr-FR,fr;q=0.9', 'en;q=0', 'en;q=abc', '*', '', undefined]) expect(preferredLocale(header)).toBeUndefined();
  });
});
