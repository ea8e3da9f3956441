import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { Registry } from 'prom-client';
import type { DataSource, EntityManager } from 'typeorm';
import { createEnvelope, deadLetterSubject, eventsStreamName, eventSubject, ProblemError, withPrefix, type EventEnvelope } from '@ally/contracts';
import { AckPolicy } from '@nats-io/jetstream';
import { deadLetterStreamName, DLQ_HEADERS, ensureStreams, EventConsumer, stalledConsumers, subjectFilter, type EventConsumerOptions } from '@ally/messaging';
import { createTestEnv, PrivatePostgres, waitFor, type TestEnv } from '@ally/testing';
import { metricValue, openTestSchema, silentLogger } from './support.js';

const SCHEMA = 'consumer';

describe(EventConsumer.name, () => {
  let env: TestEnv;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let dataSource: DataSource;
  const consumers: EventConsumer[] = [];

  /** Publishes an envelope straight to the stream; a distinct Nats-Msg-Id per call so JetStream keeps every copy. */
  async function publish(envelope: EventEnvelope, msgID?: string): Promise<number> {
    const ack = await jetstream(nc).publish(withPrefix(env.prefix, eventSubject(envelope.type)), JSON.stringify(envelope), { msgID });
    expect(ack.duplicate).toBe(false);
    return ack.seq;
  }

  async function startConsumer(opts: Pick<EventConsumerOptions, 'durable' | 'types' | 'handler'> & Partial<EventConsumerOptions>) {
    const consumer = new EventConsumer({
      dataSource,
      nats: nc,
      prefix: env.prefix,
      logger: silentLogger(),
      registry: new Registry(),
      ...opts,
    });
    await consumer.start();
    consumers.push(consumer);
    return consumer;
  }

  const recordEffect = (durable: string) => async (em: EntityManager, event: EventEnvelope) => {
    await em.query(`INSERT INTO effects (event_id, consumer, n) VALUES ($1, $2, $3)`, [event.id, durable, (event.data as { n: number }).n]);
  };

  const effects = (durable: string) =>
    env.sql<{ event_id: string; n: number }>(`SELECT event_id, n FROM ${SCHEMA}.effects WHERE consumer = $1 ORDER BY id`, [durable]);

  /**
   * Waits until the durable has been handed everything matching its filter that
   * the stream holds up to `seq`, and has acknowledged (or terminated) all of it.
   */
  const settled = (durable: string, seq: number) =>
    waitFor(async () => {
      const info = await jsm.consumers.info(eventsStreamName(env.prefix), durable);
      const { state } = await jsm.streams.info(eventsStreamName(env.prefix));
      return state.last_seq >= seq && info.num_pending === 0 && info.num_ack_pending === 0 && info.delivered.consumer_seq > 0 && info;
    }, `${durable} to settle at stream sequence ${seq}`);

  beforeAll(async () => {
    env = await createTestEnv();
    ({ dataSource } = await openTestSchema(env, SCHEMA));
    nc = await env.nats();
    await ensureStreams(nc, { prefix: env.prefix });
    jsm = await jetstreamManager(nc);
  });

  afterAll(async () => {
    for (const c of consumers) await c.stop();
    await dataSource?.destroy();
    await env?.close();
  });

  it('has one effect for an event delivered three times, and acks all three deliveries', async () => {
    const durable = 'test-effects';
    const envelope = createEnvelope({ type: 'test.thing.happened', source: 'test', data: { n: 42 } });
    // The same envelope (same id) three times under different Nats-Msg-Ids: JetStream keeps and delivers all three.
    const seqs = [await publish(envelope, `${envelope.id}:1`), await publish(envelope, `${envelope.id}:2`), await publish(envelope)];
    expect((await jsm.streams.info(eventsStreamName(env.prefix))).state.messages).toBe(3);

    const registry = new Registry();
    let calls = 0;
    const handler = recordEffect(durable);
    await startConsumer({ durable, types: ['test.thing.happened'], registry, handler: async (em, e) => (calls++, handler(em, e)) });

    const info = await settled(durable, seqs[2]);
    expect(info.delivered.stream_seq).toBe(seqs[2]);
    expect(info.ack_floor.stream_seq).toBe(seqs[2]);
    expect(info.num_redelivered).toBe(0);
    expect(calls).toBe(1);
    expect(await effects(durable)).toEqual([{ event_id: envelope.id, n: 42 }]);
    expect(await env.sql(`SELECT event_id, consumer FROM ${SCHEMA}.inbox`)).toEqual([{ event_id: envelope.id, consumer: durable }]);
    // Three deliveries, three acks: two of them found the inbox row and skipped the handler.
    expect(await metricValue(registry, 'ally_events_processed_total')).toBe(3);
  });

  it('skips, in a consumer that shares another\'s inbox, what that one already handled (a consumer split in two reads the stream anew)', async () => {
    const before = createEnvelope({ type: 'test.split.happened', source: 'test', data: { n: 1 } });
    const after = createEnvelope({ type: 'test.split.happened', source: 'test', data: { n: 2 } });
    await publish(before);
    const old = await startConsumer({ durable: 'test-split-old', types: ['test.split.happened'], handler: recordEffect('test-split') });
    await settled('test-split-old', await publish(after));
    await old.stop();
    // The new one starts at the stream's beginning: both events come again, neither has a second effect.
    const third = createEnvelope({ type: 'test.split.happened', source: 'test', data: { n: 3 } });
    const seq = await publish(third);
    await startConsumer({ durable: 'test-split-new', inbox: 'test-split-old', types: ['test.split.happened'], handler: recordEffect('test-split') });
    await settled('test-split-new', seq);
    expect((await effects('test-split')).map((e) => e.n)).toEqual([1, 2, 3]);
  });

  it('has one effect when two replicas of a consumer race for copies of the same event', async () => {
    const durable = 'test-replicas';
    const registry = new Registry();
    let calls = 0;
    const handler = recordEffect(durable);
    const slow = async (em: EntityManager, e: EventEnvelope) => {
      calls++;
      await handler(em, e);
      await new Promise((r) => setTimeout(r, 100)); // hold the inbox row uncommitted while the other replica tries
    };
    await startConsumer({ durable, types: ['test.other.happened'], handler: slow, registry });
    await startConsumer({ durable, types: ['test.other.happened'], handler: slow, registry });

    const envelope = createEnvelope({ type: 'test.other.happened', source: 'test', data: { n: 7 } });
    let last = 0;
    for (let i = 0; i < 6; i++) last = await publish(envelope, `${envelope.id}:${i}`);

    await settled(durable, last);
    expect(calls).toBe(1);
    expect(await effects(durable)).toEqual([{ event_id: envelope.id, n: 7 }]);
    expect(await metricValue(registry, 'ally_events_processed_total')).toBe(6);
  });

  it('receives only the event types it subscribed to', async () => {
    const durable = 'test-filtered';
    const seen: string[] = [];
    await startConsumer({
      durable,
      types: ['test.filter.one', 'test.filter.two'],
      handler: async (em, e) => {
        seen.push(e.type);
        await recordEffect(durable)(em, { ...e, data: { n: seen.length } });
      },
    });
    let last = 0;
    for (const type of ['test.filter.one', 'test.filter.three', 'test.filter.two', 'test.filterx.one']) {
      last = await publish(createEnvelope({ type, source: 'test', data: {} }));
    }
    await settled(durable, last);
    expect(seen).toEqual(['test.filter.one', 'test.filter.two']);
    expect(await effects(durable)).toHaveLength(2);
  });

  it('handles an event arriving just as it finished with the one before at once, not after ack_wait (two events of one commit)', async () => {
    const durable = 'test-pairs';
    const handled = new Set<string>();
    // Before NATS 2.10 the filter is `test.pair.*`: the first of each pair is delivered and only acknowledged.
    await startConsumer({ durable, types: ['test.pair.wanted', 'test.pair.also'], ackWaitMs: 60_000, handler: async (_em, e) => void handled.add(e.id) });
    const js = jetstream(nc);
    for (let i = 0; i < 40; i++) {
      const wanted = createEnvelope({ type: 'test.pair.wanted', source: 'test', data: { i } });
      // Published as a relay publishes one commit's rows: back to back.
      await Promise.all(
        [createEnvelope({ type: 'test.pair.ignored', source: 'test', data: { i } }), wanted].map((e) => js.publish(withPrefix(env.prefix, eventSubject(e.type)), JSON.stringify(e))),
      );
      await waitFor(async () => handled.has(wanted.id), `event ${i} of the pairs to be handled`, 5_000);
    }
  });

  it('handles each event in a transaction of its own when told one at a time, also when many wait', async () => {
    const durable = 'test-one-at-a-time';
    const transactions = new Map<string, string>();
    const events = Array.from({ length: 20 }, (_, n) => createEnvelope({ type: 'test.single.thing', source: 'test', data: { n } }));
    let last = 0;
    // Published before the consumer starts: they wait together, as a batch would take them.
    for (const e of events) last = await publish(e);
    await startConsumer({
      durable,
      types: ['test.single.thing'],
      oneAtATime: true,
      handler: async (em, e) => void transactions.set(e.id, (await em.query(`SELECT txid_current()::text AS tx`))[0].tx),
    });
    await settled(durable, last);
    expect(transactions.size).toBe(20);
    expect(new Set(transactions.values()).size).toBe(20);
  });

  it('dead-letters an event whose handler always fails after maxDeliver attempts, counting it in the metric', async () => {
    const durable = 'test-poison';
    const registry = new Registry();
    let attempts = 0;
    const consumer = await startConsumer({
      durable,
      types: ['test.thing.failed'],
      maxDeliver: 2,
      registry,
      handler: async (em, e) => {
        attempts++;
        await recordEffect(durable)(em, e); // rolled back with the inbox row
        throw new Error('handler always fails');
      },
    });
    const envelope = createEnvelope({ type: 'test.thing.failed', source: 'test', data: { n: 1 } });
    const seq = await publish(envelope);

    const dlq = deadLetterStreamName(env.prefix);
    const dead = await waitFor(
      () => jsm.streams.getMessage(dlq, { last_by_subj: withPrefix(env.prefix, deadLetterSubject(durable)) }).catch(() => null),
      'the event in the dead-letter stream',
    );
    expect(dead!.json<EventEnvelope>()).toEqual(envelope);
    expect(dead!.header.get(DLQ_HEADERS.subject)).toBe(withPrefix(env.prefix, eventSubject('test.thing.failed')));
    expect(dead!.header.get(DLQ_HEADERS.seq)).toBe(String(seq));
    expect(dead!.header.get(DLQ_HEADERS.consumer)).toBe(durable);
    expect(dead!.header.get(DLQ_HEADERS.reason)).toContain('handler always fails');
    expect(consumer.maxDeliver).toBe(2);
    expect(attempts).toBe(2);
    await waitFor(async () => (await metricValue(registry, 'ally_events_dead_lettered_total')) === 1, 'the dead-letter metric');

    // Terminated, not retried any further; no effect and no inbox row survived the failed attempts.
    const info = await settled(durable, seq);
    expect(info.num_ack_pending).toBe(0);
    await new Promise((r) => setTimeout(r, 300));
    expect(attempts).toBe(2);
    expect((await jsm.streams.info(dlq)).state.messages).toBe(1);
    expect(await effects(durable)).toEqual([]);
    expect(await env.sql(`SELECT 1 FROM ${SCHEMA}.inbox WHERE consumer = $1`, [durable])).toEqual([]);
    expect(await metricValue(registry, 'ally_events_processed_total')).toBe(0);
  });

  it('retries an event whose handler finds a service it asks unavailable (503, 504) beyond maxDeliver: handled once it answers, not dead-lettered', async () => {
    const durable = 'test-service-away';
    let attempts = 0;
    await startConsumer({
      durable,
      types: ['test.thing.asks'],
      maxDeliver: 2,
      handler: async (em, e) => {
        attempts++;
        if (attempts <= 3) throw new ProblemError(attempts === 2 ? 504 : 503, 'The identity service is not available');
        await recordEffect(durable)(em, e);
      },
    });
    const envelope = createEnvelope({ type: 'test.thing.asks', source: 'test', data: { n: 7 } });
    const seq = await publish(envelope);
    await waitFor(async () => ((await effects(durable)).length ? true : undefined), 'the event handled once the service answers', 15_000);
    await settled(durable, seq);
    expect(attempts).toBe(4);
    expect(await effects(durable)).toEqual([{ event_id: envelope.id, n: 7 }]);
    const deadLetter = await jsm.streams.getMessage(deadLetterStreamName(env.prefix), { last_by_subj: withPrefix(env.prefix, deadLetterSubject(durable)) }).catch(() => null);
    expect(deadLetter).toBeNull();
  });

  it('dead-letters a message that is not a valid envelope at once, without calling the handler', async () => {
    const durable = 'test-garbage';
    const registry = new Registry();
    let calls = 0;
    await startConsumer({ durable, types: ['test.garbage.sent'], registry, handler: async () => void calls++ });
    const ack = await jetstream(nc).publish(withPrefix(env.prefix, eventSubject('test.garbage.sent')), '{"not":"an envelope"}');

    const dead = await waitFor(
      () => jsm.streams.getMessage(deadLetterStreamName(env.prefix), { last_by_subj: withPrefix(env.prefix, deadLetterSubject(durable)) }).catch(() => null),
      'the invalid message in the dead-letter stream',
    );
    expect(dead!.string()).toBe('{"not":"an envelope"}');
    await settled(durable, ack.seq);
    expect(calls).toBe(0);
    expect(await metricValue(registry, 'ally_events_dead_lettered_total')).toBe(1);
  });

  it('creates its durable anew when its event types change, from where it had acknowledged (NATS before 2.10 delivers nothing under an updated filter)', async () => {
    const durable = 'test-widened';
    const calls: number[] = [];
    const handler = async (_em: EntityManager, e: EventEnvelope) => void calls.push((e.data as { n: number }).n);
    const first = await startConsumer({ durable, types: ['test.thing.happened'], handler });
    const seq = await publish(createEnvelope({ type: 'test.thing.happened', source: 'test', data: { n: 1 } }));
    await settled(durable, seq);
    await first.stop();
    // A release that also reads another type: events of both kinds came while no replica ran.
    await publish(createEnvelope({ type: 'test.thing.happened', source: 'test', data: { n: 2 } }));
    const last = await publish(createEnvelope({ type: 'test.widened.happened', source: 'test', data: { n: 3 } }));
    await startConsumer({ durable, types: ['test.thing.happened', 'test.widened.happened'], handler });
    await settled(durable, last);
    expect(calls.filter((n) => n <= 3)).toEqual([1, 2, 3]);
  });

  it('hands back, never acks, an event of a type only another release of its durable consumes (a rollout adding a type)', async () => {
    const durable = 'test-rollout';
    const handled: string[] = [];
    const handler = (release: string) => async (em: EntityManager, e: EventEnvelope) => {
      handled.push(`${release}:${e.type}`);
      await recordEffect(durable)(em, e);
    };
    await startConsumer({ durable, types: ['test.rollout.kept'], handler: handler('old'), handBackMs: 100 });
    await startConsumer({ durable, types: ['test.rollout.kept', 'test.rollout.added'], handler: handler('new'), handBackMs: 100 });
    let last = 0;
    for (let n = 0; n < 20; n++) last = await publish(createEnvelope({ type: 'test.rollout.added', source: 'test', data: { n } }));
    await settled(durable, last);
    expect(handled).toEqual(Array(20).fill('new:test.rollout.added'));
    expect(await effects(durable)).toHaveLength(20);
  });

  it('pulls no more than it handles within ack_wait while its handler is slow, so nothing is delivered twice', async () => {
    const durable = 'test-backlog';
    const count = 800;
    const js = jetstream(nc);
    await Promise.all(
      Array.from({ length: count }, (_, n) =>
        js.publish(withPrefix(env.prefix, eventSubject('test.load.happened')), JSON.stringify(createEnvelope({ type: 'test.load.happened', source: 'test', data: { n } }))),
      ),
    );
    const { state } = await jsm.streams.info(eventsStreamName(env.prefix));
    let calls = 0;
    // ~2.4 s of handling in all, longer than ack_wait: a consumer that took all of it at once kept the last ones waiting past it.
    await startConsumer({
      durable,
      types: ['test.load.happened'],
      ackWaitMs: 2_000,
      handler: async () => {
        calls++;
        await new Promise((r) => setTimeout(r, 3));
      },
    });
    const info = await settled(durable, state.last_seq);
    // Every event delivered once: the durable's delivery count is the number of events.
    expect({ calls, deliveries: info.delivered.consumer_seq }).toEqual({ calls: count, deliveries: count });
  });
});

describe(`${EventConsumer.name} when its infrastructure goes away`, () => {
  let env: TestEnv;
  let pg: PrivatePostgres;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let dataSource: DataSource;
  const consumers: EventConsumer[] = [];

  beforeAll(async () => {
    // A database of its own to stop; NATS is the shared one (only this run's streams are touched).
    pg = new PrivatePostgres();
    await pg.init();
    env = await createTestEnv({ pgUrl: pg.url });
    ({ dataSource } = await openTestSchema(env, SCHEMA));
    nc = await env.nats();
    await ensureStreams(nc, { prefix: env.prefix });
    jsm = await jetstreamManager(nc);
  }, 60_000);

  afterAll(async () => {
    for (const c of consumers) await c.stop();
    await pg?.start().catch(() => undefined);
    await dataSource?.destroy();
    await env?.close();
    await pg?.destroy();
  });

  async function startConsumer(durable: string, registry: Registry, maxDeliver = 2) {
    const consumer = new EventConsumer({
      durable,
      types: ['test.thing.happened'],
      maxDeliver,
      dataSource,
      nats: nc,
      prefix: env.prefix,
      logger: silentLogger(),
      registry,
      handler: async (em, e) => void (await em.query(`INSERT INTO effects (event_id, consumer, n) VALUES ($1, $2, $3)`, [e.id, durable, (e.data as { n: number }).n])),
    });
    await consumer.start();
    consumers.push(consumer);
    return consumer;
  }

  const publish = (n: number) =>
    jetstream(nc).publish(withPrefix(env.prefix, eventSubject('test.thing.happened')), JSON.stringify(createEnvelope({ type: 'test.thing.happened', source: 'test', data: { n } })));
  const effects = (durable: string) => env.sql<{ n: number }>(`SELECT n FROM ${SCHEMA}.effects WHERE consumer = $1 ORDER BY id`, [durable]);

  it('waits out an outage of its own database longer than maxDeliver attempts: the event is handled, not dead-lettered', async () => {
    const durable = 'test-db-outage';
    const registry = new Registry();
    await startConsumer(durable, registry);
    await pg.stop('fast');
    try {
      const { seq } = await publish(1);
      // More deliveries than maxDeliver (2) fail for want of a database, and the event is still pending.
      const info = await waitFor(async () => {
        const i = await jsm.consumers.info(eventsStreamName(env.prefix), durable);
        return i.delivered.consumer_seq >= 3 && i;
      }, 'three failed deliveries', 20_000);
      expect(info.delivered.stream_seq).toBe(seq);
      expect(info.num_ack_pending).toBe(1);
    } finally {
      await pg.start();
    }
    await waitFor(async () => (await effects(durable)).length > 0, 'the effect once the database is back', 40_000);
    expect(await effects(durable)).toEqual([{ n: 1 }]);
    expect(await metricValue(registry, 'ally_events_dead_lettered_total')).toBe(0);
  }, 90_000);

  it('lets JetStream redeliver without limit, also on a durable created with a limit before', async () => {
    const durable = 'test-unlimited';
    await jsm.consumers.add(eventsStreamName(env.prefix), { durable_name: durable, ack_policy: AckPolicy.Explicit, max_deliver: 6 });
    await startConsumer(durable, new Registry());
    expect((await jsm.consumers.info(eventsStreamName(env.prefix), durable)).config.max_deliver).toBe(-1);
  });

  it('creates its durable (and the streams) again when they are deleted under it, and says it is stalled meanwhile', async () => {
    const durable = 'test-recreated';
    const registry = new Registry();
    await startConsumer(durable, registry);
    await publish(10);
    // Also handed the events of the tests before (same stream, delivers all).
    await waitFor(async () => (await effects(durable)).some((e) => e.n === 10), 'the first effect');
    const before = await effects(durable);
    expect(await stalledConsumers(registry)).toEqual([]);

    // As after NATS restarted without its store: stream and consumer are gone.
    await jsm.streams.delete(eventsStreamName(env.prefix));
    await jsm.streams.delete(deadLetterStreamName(env.prefix));
    // NATS tells a waiting pull of the loss within its heartbeat (up to ~30 s); a loaded machine takes longer.
    await waitFor(async () => (await stalledConsumers(registry)).includes(durable), 'the consumer reported as stalled', 60_000);
    await waitFor(async () => (await stalledConsumers(registry)).length === 0, 'the consumer receiving again', 60_000);
    expect((await jsm.consumers.info(eventsStreamName(env.prefix), durable)).config.max_deliver).toBe(-1);
    await jsm.streams.info(deadLetterStreamName(env.prefix));

    await publish(11);
    await waitFor(async () => (await effects(durable)).some((e) => e.n === 11), 'the effect of an event published after the recreation', 15_000);
    expect(await effects(durable)).toEqual([...before, { n: 11 }]);
  }, 150_000);
});

describe(subjectFilter.name, () => {
  const subjects = ['p.ally.evt.identity.user.registered', 'p.ally.evt.identity.user.verified'];

  it('uses filter_subject for a single type on any server', () => {
    expect(subjectFilter(subjects.slice(0, 1), '2.9.10')).toEqual({ filter_subject: subjects[0] });
    expect(subjectFilter(subjects.slice(0, 1), '2.10.22')).toEqual({ filter_subject: subjects[0] });
  });

  it('uses filter_subjects for several types on NATS 2.10 and later', () => {
    expect(subjectFilter(subjects, '2.10.0')).toEqual({ filter_subjects: subjects });
    expect(subjectFilter(subjects, '2.11.1')).toEqual({ filter_subjects: subjects });
  });

  it('falls back to the narrowest wildcard covering all types on servers before 2.10', () => {
    expect(subjectFilter(subjects, '2.9.10')).toEqual({ filter_subject: 'p.ally.evt.identity.user.*' });
    expect(subjectFilter(['p.ally.evt.identity.user.registered', 'p.ally.evt.identity.organization.created'], '2.9.10')).toEqual({
      filter_subject: 'p.ally.evt.identity.*.*',
    });
    expect(subjectFilter(['p.ally.evt.identity.user.registered', 'p.ally.evt.chat.completion.x.recorded'], '2.9.10')).toEqual({
      filter_subject: 'p.ally.evt.>',
    });
  });
});
