import { jetstream } from '@nats-io/jetstream';
import { eventsStreamName, IdentityRpc, type EventEnvelope } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import type { TestEnv } from './test-env.js';
import { waitFor } from './wait-for.js';

/** Publishes an event into this run's stream as a service's outbox relay would (its id as the message id). */
export async function publishEvent(env: TestEnv, envelope: EventEnvelope): Promise<void> {
  await jetstream(await env.nats()).publish(env.subject(`ally.evt.${envelope.type}`), JSON.stringify(envelope), { msgID: envelope.id });
}

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

/**
 * Confirms a registered user's address as they would, with the token of
 * their registration event (through identity's RPC): what an account needs
 * before it may invite others.
 */
export async function confirmEmail(env: TestEnv, userId: string): Promise<void> {
  const registered = await lastEvent<{ userId: string; verificationToken: string }>(env, 'identity.user.registered', (e) => e.data.userId === userId);
  const rpc = new RpcClient(await env.nats(), env.prefix);
  await rpc.connect();
  try {
    await rpc.call(IdentityRpc.verifyEmail, { token: registered.data.verificationToken });
  } finally {
    await rpc.close();
  }
}
