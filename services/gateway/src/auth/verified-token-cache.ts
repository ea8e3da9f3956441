import type { Actor } from '@ally/contracts';

interface Entry {
  actor: Actor;
  /** The session the token names (`sid`). */
  sessionId?: string;
  /** The JWKS generation the token was verified against. */
  keysVersion: number;
  exp?: number;
  nbf?: number;
}

/**
 * Access tokens that passed full verification (signature, alg, typ, iss, aud,
 * exp, nbf), so that the next request with the same token skips the Ed25519
 * check (~0.2 ms of CPU each on a small VM; a client sends one token many
 * times during its lifetime).
 *
 * The answer is the same as verifying again: an entry is keyed by the whole
 * token (signature included), holds only what the token itself says, is used
 * only while the key set it was verified against is still current, and its
 * time claims are re-checked on every use exactly as jose does (`nbf > now`
 * or `exp <= now` make it a miss, so the full check produces the usual error).
 * Failed verifications are never cached. Bounded; the oldest entry goes first
 * (entries are inserted roughly in order of expiry).
 */
export class VerifiedTokenCache {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly maxEntries = 10_000) {}

  get(token: string, keysVersion: number): { actor: Actor; sessionId?: string; exp?: number } | undefined {
    const entry = this.entries.get(token);
    if (!entry) return undefined;
    // jose's clock: whole seconds, no tolerance (we pass none).
    const now = Math.floor(Date.now() / 1000);
    if (entry.keysVersion !== keysVersion || (entry.nbf !== undefined && entry.nbf > now) || (entry.exp !== undefined && entry.exp <= now)) {
      this.entries.delete(token);
      return undefined;
    }
    // The session travels with the actor: identity refuses changes asked for with a session a reset ended meanwhile.
    return { actor: copyOf(entry.actor), sessionId: entry.sessionId, exp: entry.exp };
  }

  set(token: string, keysVersion: number, actor: Actor, claims: { exp?: number; nbf?: number; sid?: string }): void {
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(token, { actor: copyOf(actor), sessionId: claims.sid, keysVersion, exp: claims.exp, nbf: claims.nbf });
  }

  clear(): void {
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
  }
}

const copyOf = (actor: Actor): Actor => ({ ...actor, platformRoles: [...actor.platformRoles] });
