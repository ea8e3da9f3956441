import { jetstreamManager, RetentionPolicy, StorageType, DiscardPolicy } from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/transport-node';
import { DEAD_LETTER_ROOT, EVENT_SUBJECT_ROOT, eventsStreamName, withPrefix } from '@ally/contracts';

const DAY_MS = 24 * 60 * 60 * 1000;

export interface StreamOptions {
  prefix: string;
  /** 3 in a cluster; 1 on a single server. */
  replicas?: number;
}

export const deadLetterStreamName = (prefix: string): string => `${eventsStreamName(prefix)}_DLQ`;

/**
 * Creates or updates ALLY_EVENTS (7 days at most, so a copy never outlives an
 * erasure by more than that; 2 minutes of Nats-Msg-Id dedup) and its
 * dead-letter stream. Idempotent: every service calls it at start-up. Replicas are
 * only ever raised here; fewer is an operator's change (`nats stream edit`).
 */
export async function ensureStreams(nc: NatsConnection, opts: StreamOptions): Promise<void> {
  // Remembered, so that a later `restoreStreams` on this connection recreates them the same way (replicas).
  const restorer = restorers.get(nc);
  if (restorer) restorer.opts = opts;
  else restorers.set(nc, { opts, last: 0 });
  const jsm = await jetstreamManager(nc);
  const streams = [
    { name: eventsStreamName(opts.prefix), subjects: [withPrefix(opts.prefix, `${EVENT_SUBJECT_ROOT}.>`)], maxAgeMs: 7 * DAY_MS },
    { name: deadLetterStreamName(opts.prefix), subjects: [withPrefix(opts.prefix, `${DEAD_LETTER_ROOT}.>`)], maxAgeMs: 30 * DAY_MS },
  ];
  for (const s of streams) {
    const config = {
      name: s.name,
      subjects: s.subjects,
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      discard: DiscardPolicy.Old,
      max_age: nanos(s.maxAgeMs),
      duplicate_window: nanos(2 * 60 * 1000),
      num_replicas: opts.replicas ?? 1,
    };
    try {
      const existing = await jsm.streams.info(s.name);
      // Never fewer replicas than the stream has: a process started without NATS_STREAM_REPLICAS (a command run
      // from a laptop, say) would otherwise shrink the production streams to one. More are taken.
      await jsm.streams.update(s.name, { ...config, num_replicas: Math.max(config.num_replicas, existing.config.num_replicas ?? 1) });
    } catch (err) {
      if (!/not found/i.test(String((err as Error).message))) throw err;
      try {
        await jsm.streams.add(config);
      } catch (addErr) {
        // Another replica created it between our info and add.
        if (!/already in use|exists/i.test(String((addErr as Error).message))) throw addErr;
      }
    }
  }
}

interface Restorer {
  opts: StreamOptions;
  last: number;
  running?: Promise<void>;
}
const restorers = new WeakMap<NatsConnection, Restorer>();
/** How often at most a connection re-runs `ensureStreams` on its own (a relay and every consumer may ask at once). */
const RESTORE_INTERVAL_MS = 3_000;

/**
 * Creates the streams again after NATS lost them (restarted without its store):
 * with the options `ensureStreams` last had on this connection (start-up),
 * else with `fallback`. One run at a time and at most one per few seconds per
 * connection; callers in between share the running or last attempt.
 */
export async function restoreStreams(nc: NatsConnection, fallback: StreamOptions): Promise<void> {
  let r = restorers.get(nc);
  if (!r) restorers.set(nc, (r = { opts: fallback, last: 0 }));
  if (r.running) return r.running;
  if (Date.now() - r.last < RESTORE_INTERVAL_MS) return;
  const restorer = r;
  restorer.last = Date.now();
  restorer.running = ensureStreams(nc, restorer.opts).finally(() => (restorer.running = undefined));
  return restorer.running;
}

/** A JetStream call failed because the stream (or JetStream's view of it) is not there: a publish without responders, "stream not found". */
export function isStreamMissing(err: unknown): boolean {
  // No responders to a publish comes as JetStreamNotEnabled (the library's name for it).
  return (err as Error)?.name === 'JetStreamNotEnabled' || /stream not found|no responders|jetstream (is )?not enabled/i.test(String((err as Error)?.message ?? err));
}

/**
 * A readiness check that the events stream exists; the answer is kept for
 * `cacheMs`, so a probe every second costs one JetStream request per few seconds.
 */
export function eventsStreamCheck(nc: NatsConnection, prefix: string, cacheMs = 3_000): () => Promise<void> {
  let last: { at: number; result: Promise<void> } | undefined;
  return () => {
    if (!last || Date.now() - last.at >= cacheMs) {
      const result = jetstreamManager(nc, { checkAPI: false }).then((jsm) => jsm.streams.info(eventsStreamName(prefix))).then(() => undefined);
      result.catch(() => undefined); // answered to the caller; a cached failure is not unhandled
      last = { at: Date.now(), result };
    }
    return last.result;
  };
}

/** Removes a prefix's streams; used by tests to leave nothing behind. */
export async function deleteStreams(nc: NatsConnection, prefix: string): Promise<void> {
  const jsm = await jetstreamManager(nc);
  for (const name of [eventsStreamName(prefix), deadLetterStreamName(prefix)]) {
    await jsm.streams.delete(name).catch(() => undefined);
  }
}
