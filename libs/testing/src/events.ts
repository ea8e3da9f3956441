import { jetstream } from '@nats-io/jetstream';
import { eventsStreamName, type EventEnvelope } from '@ally/contracts';
import type { TestEnv } from './test-env.js';
import { waitFor } from './wait-for.js';

/** The newest event of a type in this run's stream that matches `where` (what notify will consume). */
export async function lastEvent<T = any>(env: TestEnv, type: string, where: (e: EventEnvelope<T>) => boolean = () => true): Promise<EventEnvelope<T>> {
  const jsm = await jetstream(await env.nats()).jetstreamManager();
  const stream = eventsStreamName(env.prefix);
  return waitFor(async () => {
    const info = await jsm.streams.info(stream);
    for (let seq = info.state.last_seq; seq >= info.state.first_seq && seq > 0; seq--) {
      const msg = await jsm.streams.getMessage(stream, { seq }).catch(() => null);
      if (!msg || msg.subject !== env.subject(`ally.evt.${type}`)) continue;
      const event = msg.json<EventEnvelope<T>>();
      if (where(event)) return event;
    }
    return undefined;
  }, `event ${type}`);
}
