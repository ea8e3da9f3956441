/**
 * Answers kept for a fixed time (every entry lives `ttlMs`), at most
 * `maxEntries` of them: a Map in insertion order, which is expiry order, so
 * expired entries sit at the front and go when new ones come in, and past the
 * bound the oldest go first. For remembering another service's answer briefly
 * (billing's quota in chat, identity's word on a session in the gateway).
 */
export class ExpiringMap<K, V> {
  private readonly entries = new Map<K, { value: V; until: number }>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries: number,
  ) {}

  /** The value while it lives; undefined once expired (or never set). */
  get(key: K): V | undefined {
    const entry = this.entries.get(key);
    return entry && entry.until > Date.now() ? entry.value : undefined;
  }

  set(key: K, value: V): void {
    const now = Date.now();
    for (const [k, entry] of this.entries) {
      if (entry.until > now && this.entries.size < this.maxEntries) break;
      this.entries.delete(k);
    }
    this.entries.delete(key); // re-inserted at the end, keeping the map in expiry order
    this.entries.set(key, { value, until: now + this.ttlMs });
  }

  delete(key: K): void {
    this.entries.delete(key);
  }

  get size(): number {
    return this.entries.size;
  }
}
