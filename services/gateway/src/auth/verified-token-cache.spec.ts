import { describe, expect, it } from '@jest/globals';
import type { Actor } from '@ally/contracts';
import { VerifiedTokenCache } from './verified-token-cache.js';

describe(VerifiedTokenCache.name, () => {
  const exp = Math.floor(Date.now() / 1000) + 600;

  it('answers a token verified before with the same actor, its session included (identity checks it on key and setting changes)', () => {
    const cache = new VerifiedTokenCache();
    const actor: Actor = { userId: 'u1', platformRoles: ['compliance'], sessionId: 's1' };
    cache.set('token', 1, actor, { exp, sid: 's1' });
    expect(cache.get('token', 1)).toEqual({ actor, sessionId: 's1', exp });
    // A copy: what a caller does to it changes nothing cached.
    cache.get('token', 1)!.actor.platformRoles.push('admin');
    expect(cache.get('token', 1)!.actor.platformRoles).toEqual(['compliance']);
  });

  it('misses for another key set, an expired token or one not yet valid', () => {
    const cache = new VerifiedTokenCache();
    const actor: Actor = { userId: 'u1', platformRoles: [] };
    cache.set('a', 1, actor, { exp });
    cache.set('b', 1, actor, { exp: Math.floor(Date.now() / 1000) });
    cache.set('c', 1, actor, { exp, nbf: Math.floor(Date.now() / 1000) + 60 });
    expect([cache.get('a', 2), cache.get('b', 1), cache.get('c', 1)]).toEqual([undefined, undefined, undefined]);
  });
});
