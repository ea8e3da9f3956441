import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';

/**
 * Work a replica is doing that its shutdown waits for (answers being written
 * or relayed): what ends within the wait goes its way, the rest is stopped and
 * given a moment to end properly (saved, billed, its client told) before the
 * process goes.
 */
export class InFlight<T> implements Iterable<T> {
  private readonly items = new Set<T>();
  /** Called when the last item ends (a drain waits for it). */
  private idle?: () => void;

  get size(): number {
    return this.items.size;
  }

  [Symbol.iterator](): Iterator<T> {
    return this.items.values();
  }

  /** Adds `item`; call the returned function when it has ended. */
  add(item: T): () => void {
    this.items.add(item);
    return () => {
      this.items.delete(item);
      if (this.items.size === 0) this.idle?.();
    };
  }

  /** Waits up to `waitMs` for everything to end, then `stop`s what is left and waits up to `settleMs` more. `what` names the work in the log. */
  async drain(opts: { waitMs: number; settleMs: number; stop: (item: T) => void; logger: Logger; what: string }): Promise<void> {
    if (this.items.size === 0) return;
    opts.logger.info({ pending: this.items.size }, `waiting for the ${opts.what} before stopping`);
    const idle = new Promise<void>((resolve) => (this.idle = resolve));
    await Promise.race([idle, sleep(Math.max(0, opts.waitMs))]);
    if (this.items.size === 0) return;
    opts.logger.warn({ pending: this.items.size }, `stopping the ${opts.what} still going: the replica is shutting down`);
    for (const item of [...this.items]) opts.stop(item);
    await Promise.race([idle, sleep(opts.settleMs)]);
  }
}
