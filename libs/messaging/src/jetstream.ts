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
 * dead-letter stream. Idempotent: every service calls it at start-up.
 */
export async function ensureStreams(nc: NatsConnection, opts: StreamOptions): Promise<void> {
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
      await jsm.streams.info(s.name);
      await jsm.streams.update(s.name, config);
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

/** Removes a prefix's streams; used by tests to leave nothing behind. */
export async function deleteStreams(nc: NatsConnection, prefix: string): Promise<void> {
  const jsm = await jetstreamManager(nc);
  for (const name of [eventsStreamName(prefix), deadLetterStreamName(prefix)]) {
    await jsm.streams.delete(name).catch(() => undefined);
  }
}
