import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';

/**
 * A stream of frames over core NATS from one producer (chat) to one consumer
 * (the gateway): ordered by `seq`, flow-controlled by the consumer's acks on
 * `<subject>.ctl` (the producer never runs more than `window` frames ahead),
 * ended by a final frame. Either side going away leaves nothing behind: the
 * producer gives up when acks stop coming, the consumer when frames stop.
 */
export interface Frame {
  seq: number;
  type: string;
}

const ctlSubject = (subject: string) => `${subject}.ctl`;

/**
 * Frames, acks and unsubscriptions wait for the end of the current turn of the
 * event loop: a delta that follows another within the turn merges into it
 * instead of becoming a frame of its own (see `Coalescing`). The connection
 * writes a turn's messages together anyway (`connectNats`); each frame is still
 * its own message, in the same order.
 */
const deferred: (() => void)[] = [];
let flushScheduled = false;

function soon(work: () => void): void {
  deferred.push(work);
  if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flushDeferred);
  }
}

function flushDeferred(): void {
  flushScheduled = false;
  for (const work of deferred.splice(0)) {
    try {
      work();
    } catch {
      // The connection is draining or closed meanwhile: the other side gives up on silence, as when we die.
    }
  }
}

/**
 * Drains `nc` after sending what waits for the end of this turn of the event
 * loop: the last frames of answers a stopping replica just ended would
 * otherwise meet a draining connection and be dropped (the consumer then
 * waits for its silence limit instead of reading the error frame).
 */
export async function drainNats(nc: NatsConnection): Promise<void> {
  flushDeferred();
  await nc.drain();
}

function publishSoon(nc: NatsConnection, subject: string, data: string): void {
  soon(() => {
    if (!nc.isClosed()) nc.publish(subject, data);
  });
}

function unsubscribeSoon(sub: Subscription): void {
  soon(() => {
    if (!sub.isClosed()) sub.unsubscribe();
  });
}

/**
 * A message's JSON object, or undefined for anything else. A subscription's
 * callback runs in the connection's read loop: one that throws stops the
 * connection reading for good (no RPC, no acks, until a stale-connection check
 * minutes later), so a malformed message is ignored, never thrown.
 */
function objectOf<T extends object>(msg: Msg): Partial<T> | undefined {
  try {
    const value: unknown = msg.json();
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Partial<T>) : undefined;
  } catch {
    return undefined;
  }
}

/** A frame as the producer writes it; `seq` is added on send. */
export type Unsequenced<F> = F extends unknown ? Omit<F, 'seq'> : never;

export class StreamAbandoned extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'StreamAbandoned';
  }
}

/**
 * How a producer lets small frames travel together. A frame `holds` applies to
 * goes out at once when none like it left in the last `lingerMs` (so the first
 * piece of an answer is never delayed), otherwise when that time is up, merged
 * with whatever followed it meanwhile: one message, one wake-up of the broker
 * and of the consumer, and one write to the client, instead of one per token.
 * Any other frame goes out at once, after what waits.
 */
export interface Coalescing<F extends Frame> {
  lingerMs: number;
  holds: (frame: Unsequenced<F>) => boolean;
  /** Combines a frame with the one waiting before it; undefined keeps them apart. */
  merge: (queued: Unsequenced<F>, next: Unsequenced<F>) => Unsequenced<F> | undefined;
}

interface Queued<F extends Frame> {
  seq: number;
  frame: Unsequenced<F>;
  timer?: NodeJS.Timeout;
  published?: boolean;
}

/** A frame sent so the consumer knows the producer is alive while it waits (for a slow model, say). */
export interface KeepAlive<F extends Frame> {
  /** The longest the consumer goes without a frame (while it keeps up). */
  everyMs: number;
  frame: Unsequenced<F>;
}

export class StreamPublisher<F extends Frame> {
  /** Aborted when the consumer cancels or stops acknowledging: pass it to the provider call. */
  readonly abort = new AbortController();
  private seq = 0;
  private acked = 0;
  private readonly ctl: Subscription;
  /** Sends waiting for room in the window; an ack or the end wakes them all. */
  private readonly waiting = new Set<() => void>();
  private lastSentAt = performance.now();
  private readonly keepAliveTimer?: NodeJS.Timeout;
  /** The last frame sent and not yet published: later frames may merge into it. */
  private queued?: Queued<F>;
  /** When the last frame `coalescing.holds` applies to was published. */
  private lastHeld = -Infinity;

  constructor(
    private readonly nc: NatsConnection,
    private readonly subject: string,
    private readonly window: number,
    private readonly ackTimeoutMs: number,
    private readonly coalescing?: Coalescing<F>,
    keepAlive?: KeepAlive<F>,
  ) {
    this.ctl = nc.subscribe(ctlSubject(subject), {
      callback: (err, msg) => {
        const control = err ? undefined : objectOf<{ ack: number; cancel: boolean; unread: boolean }>(msg);
        if (!control) return;
        // The first cancel decides: a consumer that said nobody read any of it cannot have passed any on since
        // (a client whose connection closes after it was told to ask again sends a second, plain one).
        if (control.cancel === true && !this.cancelled) {
          this.unread = control.unread === true;
          this.abort.abort(new StreamAbandoned(this.unread ? 'nobody reads the stream' : 'the client went away'));
        }
        if (typeof control.ack === 'number') this.acked = Math.max(this.acked, control.ack);
        this.wakeAll();
      },
    });
    if (keepAlive) {
      // Checked every half period, sent when half a period passed without a frame: no gap is longer than the period.
      const half = keepAlive.everyMs / 2;
      this.keepAliveTimer = setInterval(() => {
        // Not while a send waits for room: then the consumer is the one behind, and has frames to read.
        if (this.waiting.size === 0 && performance.now() - this.lastSentAt >= half) void this.send(keepAlive.frame).catch(() => undefined);
      }, half);
      this.keepAliveTimer.unref();
    }
  }

  /** Cancelled by a consumer that passed nothing on (the client was told the call failed): no one saw any of it. */
  unread = false;

  get cancelled(): boolean {
    return this.abort.signal.aborted;
  }

  /** Publishes the next frame, first waiting while the consumer is `window` frames behind. */
  async send(frame: Unsequenced<F>): Promise<void> {
    if (this.cancelled && frame.type !== 'error' && frame.type !== 'done') throw this.abort.signal.reason;
    const merged = this.queued && this.coalescing?.merge(this.queued.frame, frame);
    if (merged) {
      this.queued!.frame = merged;
      return;
    }
    while (this.seq - this.acked >= this.window) {
      if (this.cancelled) throw this.abort.signal.reason;
      let wake!: () => void;
      const acked = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), this.ackTimeoutMs);
        wake = () => {
          clearTimeout(timer);
          resolve(true);
        };
        this.waiting.add(wake);
      });
      this.waiting.delete(wake);
      if (!acked) {
        this.abort.abort(new StreamAbandoned(`no acknowledgement for ${this.ackTimeoutMs} ms`));
        throw this.abort.signal.reason;
      }
    }
    if (this.cancelled && frame.type !== 'error' && frame.type !== 'done') throw this.abort.signal.reason;
    this.enqueue(frame);
  }

  /** Sends a final frame without waiting for room (the consumer may be gone). */
  finish(frame: Unsequenced<F>): void {
    this.enqueue(frame);
    this.close();
  }

  close(): void {
    this.release();
    if (this.keepAliveTimer) clearInterval(this.keepAliveTimer);
    unsubscribeSoon(this.ctl);
    if (!this.cancelled) this.abort.abort(new StreamAbandoned('the stream was closed'));
    this.wakeAll();
  }

  private wakeAll(): void {
    for (const wake of [...this.waiting]) wake();
  }

  /** Takes the next sequence number now; the frame leaves with this turn's others or when its linger is up. */
  private enqueue(frame: Unsequenced<F>): void {
    this.release();
    const queued: Queued<F> = { seq: ++this.seq, frame };
    this.queued = queued;
    this.lastSentAt = performance.now();
    const holds = this.coalescing?.holds(frame) ?? false;
    const wait = holds ? this.lastHeld + this.coalescing!.lingerMs - performance.now() : 0;
    if (wait > 0)
      queued.timer = setTimeout(() => {
        queued.timer = undefined;
        soon(() => this.publish(queued));
      }, wait);
    else soon(() => this.publish(queued));
    if (holds) this.lastHeld = Math.max(this.lastHeld + this.coalescing!.lingerMs, performance.now());
  }

  /** A frame waiting for its linger leaves now, ahead of what comes next. */
  private release(): void {
    const waiting = this.queued;
    if (!waiting?.timer) return;
    clearTimeout(waiting.timer);
    waiting.timer = undefined;
    soon(() => this.publish(waiting));
  }

  private publish(queued: Queued<F>): void {
    if (queued.published) return;
    queued.published = true;
    if (this.queued === queued) this.queued = undefined;
    if (!this.nc.isClosed()) this.nc.publish(this.subject, JSON.stringify({ ...queued.frame, seq: queued.seq }));
  }
}

/**
 * A request/reply call its caller may call off (a completion the HTTP client
 * stopped waiting for): the handler listens on `<subject>.ctl`, the control
 * subject of a stream, so the same permissions and `{ cancel: true }` apply,
 * and hands `signal` to the work to stop.
 */
export class CallCancellation {
  private readonly controller = new AbortController();
  private readonly sub: Subscription;

  constructor(nc: NatsConnection, subject: string) {
    this.sub = nc.subscribe(ctlSubject(subject), {
      callback: (err, msg) => {
        if (!err && objectOf<{ cancel: boolean }>(msg)?.cancel === true) this.controller.abort(new StreamAbandoned('the client went away'));
      },
    });
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  close(): void {
    unsubscribeSoon(this.sub);
  }
}

/** The caller's side of `CallCancellation`. */
export function cancelCall(nc: NatsConnection, subject: string): void {
  if (!nc.isClosed()) publishSoon(nc, ctlSubject(subject), JSON.stringify({ cancel: true }));
}

/** Who wants to hear that a connection came back: one watch of its status per connection, however many streams it carries. */
const reconnectListeners = new WeakMap<NatsConnection, Set<() => void>>();

function onReconnect(nc: NatsConnection, listener: () => void): () => void {
  let listeners = reconnectListeners.get(nc);
  if (!listeners) {
    const set = new Set<() => void>();
    listeners = set;
    reconnectListeners.set(nc, set);
    void (async () => {
      for await (const status of nc.status()) if (status.type === 'reconnect') for (const l of [...set]) l();
    })().catch(() => undefined);
  }
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export class StreamSubscriber<F extends Frame> {
  private readonly sub: Subscription;
  private readonly pending = new Map<number, F>();
  private next = 1;
  /** The highest `seq` heard so far. */
  private heard = 0;
  /**
   * A frame came after a gap: core NATS delivers one connection's messages in
   * order, so the missing ones were lost (published while a connection was
   * away) and will never come.
   */
  private gap = false;
  private notify?: () => void;
  /** Set by `cancelWhenHeard`: the next frame is answered with a cancel instead of being read. */
  private unwanted?: () => void;
  private closed = false;
  /**
   * The connection came back and no frame since: frames published meanwhile are lost,
   * and if they were the last (the answer ended while it was away) none will follow.
   */
  private suspect = false;
  /** While a wait runs: shortens it to `reconnectGraceMs`. */
  private shortenWait?: () => void;
  private readonly stopWatching: () => void;

  /**
   * `reconnectGraceMs`: after the connection came back, how long a live producer
   * takes at most to be heard from (its keep-alive interval and some): silent
   * longer, it is taken to be gone then, not after `idleTimeoutMs`.
   */
  constructor(
    private readonly nc: NatsConnection,
    private readonly subject: string,
    private readonly idleTimeoutMs: number,
    private readonly isFinal: (frame: F) => boolean,
    private readonly reconnectGraceMs = idleTimeoutMs,
  ) {
    this.stopWatching = onReconnect(nc, () => {
      this.suspect = true;
      this.shortenWait?.();
    });
    // Subscribed before the request is sent, so the first frame cannot be missed.
    this.sub = nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err || this.closed) return; // closed: the unsubscription is on its way
        if (this.unwanted) return this.unwanted();
        const frame = objectOf<F>(msg) as F | undefined;
        // Not a frame of a producer of ours (none sends one without its place in the stream): ignored.
        if (!frame || !Number.isSafeInteger(frame.seq) || frame.seq < 1 || typeof frame.type !== 'string') return;
        this.suspect = false;
        if (frame.seq > this.heard + 1) this.gap = true;
        this.heard = Math.max(this.heard, frame.seq);
        this.pending.set(frame.seq, frame);
        this.notify?.();
      },
    });
  }

  /** Frames in order, until the final one. Throws StreamAbandoned when the producer falls silent or frames were lost. */
  async *frames(): AsyncGenerator<F> {
    try {
      for (;;) {
        let frame = this.pending.get(this.next);
        if (!frame && this.closed) return;
        if (!frame && this.gap) {
          // The rest cannot be told in order: the producer is stopped rather than left to time out.
          this.cancel();
          throw new StreamAbandoned(`frame ${this.next} was lost`);
        }
        if (!frame) {
          const arrived = await new Promise<boolean>((resolve) => {
            let settled = false;
            const end = (arrived: boolean) => {
              settled = true;
              clearTimeout(timer);
              resolve(arrived);
            };
            let deadline = performance.now() + (this.suspect ? this.reconnectGraceMs : this.idleTimeoutMs);
            let timer = setTimeout(() => end(false), deadline - performance.now());
            // Shortened, never lengthened: reconnects late in a wait do not keep a silent producer's stream open.
            this.shortenWait = () => {
              if (settled) return;
              deadline = Math.min(deadline, performance.now() + this.reconnectGraceMs);
              clearTimeout(timer);
              timer = setTimeout(() => end(false), Math.max(0, deadline - performance.now()));
            };
            this.notify = () => end(true);
          });
          this.notify = this.shortenWait = undefined;
          if (!arrived) {
            this.cancel();
            throw new StreamAbandoned(this.suspect ? `no frame since the connection came back` : `no frame for ${this.idleTimeoutMs} ms`);
          }
          continue;
        }
        this.pending.delete(this.next++);
        yield frame;
        if (this.isFinal(frame)) return;
      }
    } finally {
      this.close();
    }
  }

  /** Tells the producer how far the consumer got (frees room in its window). */
  ack(seq: number): void {
    if (!this.nc.isClosed()) publishSoon(this.nc, ctlSubject(this.subject), JSON.stringify({ ack: seq }));
  }

  /** `unread`: nothing of the stream reached anyone (the producer then keeps nothing of it). */
  cancel(unread = false): void {
    if (!this.nc.isClosed()) publishSoon(this.nc, ctlSubject(this.subject), JSON.stringify(unread ? { cancel: true, unread } : { cancel: true }));
    this.close();
  }

  /**
   * Nobody will read this stream (the call that opened it timed out), but the
   * producer may still be getting ready to send it: its first frame, once it
   * listens for control messages, is answered with a cancel saying nobody
   * read any of it (what the producer did is then not kept). Silent for
   * `withinMs`, it is taken to have given up, and the subscription goes.
   */
  cancelWhenHeard(withinMs: number): void {
    const giveUp = setTimeout(() => this.close(), withinMs);
    giveUp.unref();
    this.unwanted = () => {
      clearTimeout(giveUp);
      this.cancel(true);
    };
  }

  close(): void {
    this.closed = true;
    this.stopWatching();
    unsubscribeSoon(this.sub);
    this.notify?.();
  }
}
