import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdirSync, rmSync } from 'node:fs';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { Registry } from 'prom-client';
import type { DataSource } from 'typeorm';
import { eventsStreamName, eventSubject, withPrefix, type EventEnvelope } from '@ally/contracts';
import { connectNats, ensureStreams, Outbox, OutboxRelay } from '@ally/messaging';
import { createTestEnv, PrivateNatsServer, waitFor, type TestEnv } from '@ally/testing';
import { metricValue, openTestSchema, silentLogger, TestEvents } from './support.js';

const SCHEMA = 'relay';

describe(OutboxRelay.name, () => {
  let env: TestEnv;
  let server: PrivateNatsServer;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let dataSource: DataSource;
  let relay: OutboxRelay;
  const registry = new Registry();
  const outbox = new Outbox('test', TestEvents);
  /** Every envelope id appended so far, in order. */
  const appended: string[] = [];

  const stream = () => eventsStreamName(env.prefix);
  const subject = () => withPrefix(env.prefix, eventSubject('test.thing.happened'));
  const unsent = async () => (await env.sql<{ n: number }>(`SELECT count(*)::int AS n FROM ${SCHEMA}.outbox WHERE sent_at IS NULL`))[0].n;

  /** All messages of the stream, read one by one by sequence. */
  async function streamMessages(): Promise<{ seq: number; msgId: string | undefined; envelope: EventEnvelope }[]> {
    const { state } = await jsm.streams.info(stream());
    const out = [];
    for (let seq = state.first_seq; state.messages > 0 && seq <= state.last_seq; seq++) {
      const m = await jsm.streams.getMessage(stream(), { seq });
      if (m) out.push({ seq, msgId: m.header?.get('Nats-Msg-Id'), envelope: m.json<EventEnvelope>() });
    }
    return out;
  }

  async function appendEvents(transactions: number, perTransaction: number): Promise<string[]> {
    const ids: string[] = [];
    for (let t = 0; t < transactions; t++) {
      await dataSource.transaction(async (em) => {
        for (let i = 0; i < perTransaction; i++) {
          const envelope = await outbox.append(em, 'test.thing.happened', { n: appended.length + ids.length });
          ids.push(envelope.id);
        }
      });
    }
    appended.push(...ids);
    return ids;
  }

  beforeAll(async () => {
    env = await createTestEnv();
    server = new PrivateNatsServer();
    await server.start();
    ({ dataSource } = await openTestSchema(env, SCHEMA));
    nc = await connectNats({ url: server.url, name: 'outbox-relay-spec' });
    await ensureStreams(nc, { prefix: env.prefix });
    jsm = await jetstreamManager(nc);
    relay = new OutboxRelay({
      dataSource,
      databaseUrl: env.serviceDbUrl(SCHEMA),
      schema: SCHEMA,
      nats: nc,
      prefix: env.prefix,
      logger: silentLogger(),
      registry,
      pollIntervalMs: 200,
      publishTimeoutMs: 500,
    });
    await relay.start();
  });

  afterAll(async () => {
    await relay?.stop();
    await nc?.close();
    await dataSource?.destroy();
    await server?.destroy();
    await env?.close();
  });

  it('keeps events written while NATS is stopped unsent, and publishes each exactly once when the same NATS is back', async () => {
    await server.stop();
    const ids = await appendEvents(4, 5);

    // Woken by NOTIFY and polling every 200 ms, the relay tries again and again against the dead server.
    await waitFor(async () => (await metricValue(registry, 'ally_outbox_publish_failures_total')) >= 3, 'three failed publish passes');
    expect(await unsent()).toBe(ids.length);
    expect(await metricValue(registry, 'ally_outbox_published_total')).toBe(0);
    const [first] = await env.sql(`SELECT attempts, last_error FROM ${SCHEMA}.outbox WHERE id = $1`, [ids[0]]);
    expect(first.attempts).toBeGreaterThanOrEqual(3);
    expect(first.last_error).toMatch(/timeout/i);

    await server.start(); // same port, same store dir: the stream and its dedup state survive
    await waitFor(async () => (await unsent()) === 0, 'every outbox row marked sent', 30_000);

    const info = await jsm.streams.info(stream(), { subjects_filter: '>' });
    expect(info.state.messages).toBe(ids.length);
    expect(info.state.subjects).toEqual({ [subject()]: ids.length });
    const messages = await streamMessages();
    expect(new Set(messages.map((m) => m.envelope.id)).size).toBe(ids.length);
    // In outbox order, each under its envelope id as Nats-Msg-Id.
    expect(messages.map((m) => m.envelope.id)).toEqual(ids);
    expect(messages.every((m) => m.msgId === m.envelope.id)).toBe(true);
    expect(messages[0].envelope).toMatchObject({ type: 'test.thing.happened', source: 'test', version: 1, data: { n: 0 } });
  });

  it('does not duplicate a message when the relay publishes a row again after a lost ack (Nats-Msg-Id dedup)', async () => {
    const before = await streamMessages();
    const publishedBefore = await metricValue(registry, 'ally_outbox_published_total');
    const victim = appended[3];

    // The publish reached JetStream but the relay never recorded it: the row looks unsent again.
    await env.sql(`UPDATE ${SCHEMA}.outbox SET sent_at = NULL WHERE id = $1`, [victim]);
    relay.wake();
    await waitFor(
      async () => (await env.sql(`SELECT 1 FROM ${SCHEMA}.outbox WHERE id = $1 AND sent_at IS NOT NULL`, [victim])).length === 1,
      'the row published again and marked sent',
    );

    // It really was published a second time, and JetStream dropped it.
    expect(await metricValue(registry, 'ally_outbox_published_total')).toBe(publishedBefore + 1);
    expect(await streamMessages()).toEqual(before);
  });

  it('publishes nothing for a transaction that rolls back', async () => {
    const before = (await jsm.streams.info(stream())).state.messages;
    await expect(
      dataSource.transaction(async (em) => {
        await outbox.append(em, 'test.thing.happened', { n: -1 });
        throw new Error('the state change failed');
      }),
    ).rejects.toThrow('the state change failed');
    const [committed] = await appendEvents(1, 1);

    await waitFor(async () => (await unsent()) === 0, 'the committed row sent');
    const messages = await streamMessages();
    expect(messages).toHaveLength(before + 1);
    expect(messages.at(-1)!.envelope.id).toBe(committed);
    expect(messages.some((m) => m.envelope.data && (m.envelope.data as { n: number }).n === -1)).toBe(false);
  });

  it('listens again after a database outage longer than its first retry', async () => {
    const role = env.roleOf(SCHEMA);
    const listeners = async () =>
      (await env.sql<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE usename = $1 AND query LIKE 'LISTEN %'`, [role])).map((r) => r.pid);
    await waitFor(async () => (await listeners()).length === 1, 'the relay listening');
    // The database refuses the relay's role for a few seconds: the first attempt to listen again fails.
    await env.sql(`ALTER ROLE "${role}" NOLOGIN`);
    try {
      await env.sql(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1 AND query LIKE 'LISTEN %'`, [role]);
      await new Promise((r) => setTimeout(r, 2_500));
      expect(await listeners()).toEqual([]);
    } finally {
      await env.sql(`ALTER ROLE "${role}" LOGIN`);
    }
    await waitFor(async () => (await listeners()).length === 1, 'the relay listening again', 15_000);
    // And it publishes, woken as before.
    await appendEvents(1, 1);
    await waitFor(async () => (await unsent()) === 0, 'the new row sent');
  });

  it('keeps outbox order across replicas: while another replica holds earlier rows, later ones wait', async () => {
    await relay.stop();
    const before = (await streamMessages()).length;
    const [first] = await appendEvents(1, 1);
    // Another replica's pass has taken the first row and is still publishing it (its transaction is open).
    const other = dataSource.createQueryRunner();
    await other.connect();
    await other.startTransaction();
    const replica = new OutboxRelay({ dataSource, databaseUrl: env.serviceDbUrl(SCHEMA), schema: SCHEMA, nats: nc, prefix: env.prefix, logger: silentLogger(), registry, pollIntervalMs: 200, publishTimeoutMs: 500 });
    try {
      await other.query(`SELECT id FROM ${SCHEMA}.outbox WHERE id = $1 FOR UPDATE`, [first]);
      const [second] = await appendEvents(1, 1);
      await replica.start();
      await new Promise((r) => setTimeout(r, 1_000));
      expect((await streamMessages()).slice(before).map((m) => m.envelope.id)).not.toContain(second);
      // That replica's pass fails before it marks the row sent: this one publishes both, in order.
      await other.rollbackTransaction();
      await waitFor(async () => (await unsent()) === 0, 'both rows sent');
      expect((await streamMessages()).slice(before).map((m) => m.envelope.id)).toEqual([first, second]);
    } finally {
      if (other.isTransactionActive) await other.rollbackTransaction();
      await other.release();
      await replica.stop();
    }
  });

  it('creates the streams again when NATS comes back without its store, and publishes what waited, in order', async () => {
    const again = new OutboxRelay({ dataSource, databaseUrl: env.serviceDbUrl(SCHEMA), schema: SCHEMA, nats: nc, prefix: env.prefix, logger: silentLogger(), registry, pollIntervalMs: 200, publishTimeoutMs: 500 });
    await again.start();
    try {
      await server.stop();
      rmSync(server.storeDir, { recursive: true, force: true });
      mkdirSync(server.storeDir, { recursive: true });
      await server.start();
      const ids = await appendEvents(2, 3);
      await waitFor(async () => (await unsent()) === 0, 'every row published into a recreated stream', 20_000);
      expect((await streamMessages()).map((m) => m.envelope.id)).toEqual(ids);
    } finally {
      await again.stop();
    }
  }, 60_000);

  it('ends a pass already publishing a backlog at the stop’s deadline, between batches, leaving the rest for the next start', async () => {
    await relay.stop();
    await appendEvents(50, 100);
    const busy = new OutboxRelay({ dataSource, databaseUrl: env.serviceDbUrl(SCHEMA), schema: SCHEMA, nats: nc, prefix: env.prefix, logger: silentLogger(), registry, pollIntervalMs: 60_000, batchSize: 50 });
    try {
      await busy.start();
      await waitFor(async () => (await unsent()) < 4_900, 'the pass to be under way');
      const started = Date.now();
      await busy.stop(Date.now() + 100);
      // A batch or two more at most, not the thousands left.
      expect(Date.now() - started).toBeLessThan(1_500);
      expect(await unsent()).toBeGreaterThan(0);
    } finally {
      await busy.stop();
      // What it left is no concern of the tests after this one.
      await env.sql(`UPDATE ${SCHEMA}.outbox SET sent_at = now() WHERE sent_at IS NULL`);
    }
  });

  it('publishes, as it stops, what was committed since its last pass (an answer saved with its usage as the service winds down)', async () => {
    // Neither a poll nor a NOTIFY's pass would come before the stop.
    const stopping = new OutboxRelay({ dataSource, databaseUrl: env.serviceDbUrl(SCHEMA), schema: SCHEMA, nats: nc, prefix: env.prefix, logger: silentLogger(), registry, pollIntervalMs: 60_000, settleMs: 30_000 });
    await stopping.start();
    const before = (await streamMessages()).length;
    const ids = await appendEvents(1, 2);
    await stopping.stop();
    expect(await unsent()).toBe(0);
    expect((await streamMessages()).slice(before).map((m) => m.envelope.id)).toEqual(ids);
  });

  it('publishes the events of two transactions that changed the same row in the order they committed, also when the later one began first', async () => {
    const [{ id: row }] = await dataSource.query(`INSERT INTO effects (event_id, consumer, n) VALUES (gen_random_uuid(), 'order', 0) RETURNING id`);
    const older = dataSource.createQueryRunner();
    const newer = dataSource.createQueryRunner();
    await older.connect();
    await newer.connect();
    try {
      // This transaction begins first, but its change waits for the other's and so comes after it.
      await older.startTransaction();
      await older.query('SELECT 1');
      await new Promise((r) => setTimeout(r, 50));
      await newer.startTransaction();
      await newer.query(`UPDATE effects SET n = 1 WHERE id = $1`, [row]);
      const first = await outbox.append(newer.manager, 'test.thing.happened', { n: 1 });
      const waiting = (async () => {
        await older.query(`UPDATE effects SET n = 2 WHERE id = $1`, [row]);
        const second = await outbox.append(older.manager, 'test.thing.happened', { n: 2 });
        await older.commitTransaction();
        return second;
      })();
      await new Promise((r) => setTimeout(r, 100));
      await newer.commitTransaction();
      const second = await waiting;
      // One pass finds both (as after an outage, or a relay that was stopped): the row says 2, and so must the last event.
      const before = (await streamMessages()).length;
      const again = new OutboxRelay({ dataSource, databaseUrl: env.serviceDbUrl(SCHEMA), schema: SCHEMA, nats: nc, prefix: env.prefix, logger: silentLogger(), registry, pollIntervalMs: 200, publishTimeoutMs: 500 });
      await again.start();
      try {
        await waitFor(async () => (await unsent()) === 0, 'both rows sent');
      } finally {
        await again.stop();
      }
      expect((await streamMessages()).slice(before).map((m) => m.envelope.id)).toEqual([first.id, second.id]);
    } finally {
      await older.release();
      await newer.release();
    }
  });
});
