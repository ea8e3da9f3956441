import { randomUUID } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import type { FastifyRateLimitStore, FastifyRateLimitStoreCtor } from '@fastify/rate-limit';
import type { Logger } from 'pino';
import { broadcast, listenToBroadcasts } from '@ally/messaging';

/** Core NATS subject on which every gateway replica tells the others of its group (`.<RATE_LIMIT_GROUP>`) what it counted. */
export const RATE_COUNTS_SUBJECT = 'ally.gateway.rate-counts';

/** One replica's counts of one window since its last message. */
export interface RateCounts {
  from: string;
  window: number;
  counts: Record<string, number>;
}

type Answer = { current: number; ttl: number };
type Callback = (err: Error | null, answer?: Answer) => void;

/** Keys counted per window and replica before the oldest are dropped (a flood of made-up IPs stays bounded). */
const MAX_KEYS = 100_000;
/** Keys per message: far below NATS's 1 MB. */
const KEYS_PER_MESSAGE = 2_000;

/**
 * The rate limits of every gateway replica together: windows aligned to the
 * clock (each replica's minute is the same minute), each replica counting
 * its own requests and telling the others over core NATS every `flushMs`.
 * A request's count is its replica's own plus what the others told, so a
 * client spread over N replicas gets the limit once, not N times; what the
 * others counted in the last `flushMs` (and a message NATS lost) is not seen.
 */
export class SharedRateCounts {
  private readonly id = randomUUID();
  private window = -1;
  private readonly own = new Map<string, number>();
  private readonly others = new Map<string, number>();
  private unsent = new Map<string, number>();
  private timer?: NodeJS.Timeout;
  private stopListening?: () => void;

  constructor(
    private readonly nats: NatsConnection,
    private readonly subject: string,
    private readonly windowMs: number,
    private readonly logger: Logger,
    private readonly flushMs = 250,
  ) {}

  start(): void {
    this.stopListening = listenToBroadcasts<RateCounts>(this.nats, this.subject, this.logger, 'rate-counts', (m) => this.hear(m));
    this.timer = setInterval(() => this.flush(), this.flushMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.stopListening?.();
  }

  /** Counts one request of `key`: its count in this window across the replicas, and the time left. */
  incr(key: string): Answer {
    const now = Date.now();
    this.roll(now);
    const own = (this.own.get(key) ?? 0) + 1;
    if (own === 1 && this.own.size >= MAX_KEYS) this.own.delete(this.own.keys().next().value!);
    this.own.set(key, own);
    this.unsent.set(key, (this.unsent.get(key) ?? 0) + 1);
    return { current: own + (this.others.get(key) ?? 0), ttl: this.ttl(now) };
  }

  /** The count of `key` in this window, not counting a request. */
  read(key: string): Answer {
    const now = Date.now();
    this.roll(now);
    return { current: (this.own.get(key) ?? 0) + (this.others.get(key) ?? 0), ttl: this.ttl(now) };
  }

  /** A store for @fastify/rate-limit (`store:`): its `incr`/`read` answer through callbacks; every route shares these counts. */
  storeClass(): FastifyRateLimitStoreCtor {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const counts = this;
    return class SharedStore implements FastifyRateLimitStore {
      incr(key: string, cb: Callback) {
        cb(null, counts.incr(key));
      }
      read(key: string, cb: Callback) {
        cb(null, counts.read(key));
      }
      child(): FastifyRateLimitStore {
        return this;
      }
    };
  }

  private ttl(now: number): number {
    return Math.min(this.windowMs, (this.window + 1) * this.windowMs - now);
  }

  private roll(now: number): void {
    const window = Math.floor(now / this.windowMs);
    // A clock stepped back a little (NTP) keeps the window it counts rather than forgetting every count; a long step
    // back (a VM resumed, a clock corrected by hours) starts anew rather than holding clients to a window for hours.
    if (window === this.window || (window < this.window && this.window - window <= 1)) return;
    // What this replica counted at the end of the old window goes with it.
    this.window = window;
    this.own.clear();
    this.others.clear();
    this.unsent = new Map();
  }

  private hear(m: RateCounts): void {
    if (m.from === this.id || typeof m.counts !== 'object' || m.counts === null) return;
    this.roll(Date.now());
    if (m.window !== this.window) return;
    for (const [key, n] of Object.entries(m.counts)) {
      if (typeof n !== 'number' || !(n > 0)) continue;
      if (!this.others.has(key) && this.others.size >= MAX_KEYS) this.others.delete(this.others.keys().next().value!);
      this.others.set(key, (this.others.get(key) ?? 0) + n);
    }
  }

  private flush(): void {
    if (this.unsent.size === 0) return;
    const entries = [...this.unsent];
    this.unsent = new Map();
    for (let i = 0; i < entries.length; i += KEYS_PER_MESSAGE) {
      const message: RateCounts = { from: this.id, window: this.window, counts: Object.fromEntries(entries.slice(i, i + KEYS_PER_MESSAGE)) };
      broadcast(this.nats, this.subject, message);
    }
  }
}
