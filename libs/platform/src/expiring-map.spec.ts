import { describe, expect, it } from '@jest/globals';
import { ExpiringMap } from './expiring-map.js';

describe('ExpiringMap', () => {
  it('answers while an entry lives and not after; expired entries go when new ones come in', async () => {
    const map = new ExpiringMap<string, number>(50, 100);
    map.set('a', 1);
    map.set('b', 2);
    expect(map.get('a')).toBe(1);
    await new Promise((r) => setTimeout(r, 80));
    expect(map.get('a')).toBeUndefined();
    map.set('c', 3);
    expect(map.size).toBe(1);
    expect(map.get('c')).toBe(3);
  });

  it('keeps at most maxEntries, dropping the oldest; setting a key again makes it the newest', () => {
    const map = new ExpiringMap<string, number>(60_000, 3);
    for (const k of ['a', 'b', 'c']) map.set(k, 0);
    map.set('a', 1);
    map.set('d', 0);
    expect(map.size).toBe(3);
    expect(map.get('b')).toBeUndefined();
    expect(map.get('a')).toBe(1);
    map.delete('a');
    expect(map.get('a')).toBeUndefined();
  });
});
