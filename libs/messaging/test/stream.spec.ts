import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { NatsConnection } from '@nats-io/transport-node';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { connectNats, drainNats, Pacer, StreamAbandoned, StreamPublisher, StreamSubscriber, type Coalescing } from '@ally/messaging';
import { createTestEnv, PrivateNatsServer, waitFor, type TestEnv } from '@ally/testing';

type TestFrame = { seq: number; type: 'text'; text: string } | { seq: number; type: 'end' };

// Long enough that a loaded machine (CI runs two suites at once on two cores) cannot blur "at once" and "held".
const LINGER_MS = 1_000;
const coalescing: Coalescing<TestFrame> = {
  lingerMs: LINGER_MS,
  holds: (f) => f.type === 'text',
  merge: (a, b) => (a.type === 'text' && b.type === 'text' ? { type: 'text', text: a.text + b.text } : undefined),
};

describe('streams of frames over NATS', () => {
  let env: TestEnv;
  let nc: NatsConnection;

  beforeAll(async () => {
    env = await createTestEnv();
    nc = await env.nats();
  });

  afterAll(async () => {
    await env?.close();
  });

  /** A publisher and subscriber on a fresh subject, and a reader that times each frame's arrival. */
  function open(name: string, merge?: Coalescing<TestFrame>) {
    const subject = env.subject(`stream.${name}`);
    const sub = new StreamSubscriber<TestFrame>(nc, subject, 5_000, (f) => f.type === 'end');
    const pub = new StreamPublisher<TestFrame>(nc, subject, 64, 5_000, merge);
    const frames = sub.frames();
    const next = async () => {
      const { value } = await frames.next();
      return { frame: value as TestFrame, at: performance.now() };
    };
    return { pub, next };
  }

  it('sends the first piece at once and merges the pieces that follow within the linger time into one frame, in order', async () => {
    const { pub, next } = open('coalesced', coalescing);
    const t0 = performance.now();
    await pub.send({ type: 'text', text: 'a' });
    const first = await next();
    expect(first.frame).toEqual({ seq: 1, type: 'text', text: 'a' });
    expect(first.at - t0).toBeLessThan(LINGER_MS / 2);

    await pub.send({ type: 'text', text: 'b' });
    await pub.send({ type: 'text', text: 'c' });
    await sleep(20);
    await pub.send({ type: 'text', text: 'd' });
    const merged = await next();
    expect(merged.frame).toEqual({ seq: 2, type: 'text', text: 'bcd' });
    // Held until the linger after the first piece was up, not longer. Timed from
    // when the first piece was sent, where the linger starts: its delivery may lag.
    expect(merged.at - t0).toBeGreaterThanOrEqual(LINGER_MS - 20);
    expect(merged.at - t0).toBeLessThan(LINGER_MS * 3);

    // A final frame does not wait: what is held leaves first, right away.
    const t1 = performance.now();
    await pub.send({ type: 'text', text: 'e' });
    pub.finish({ type: 'end' });
    const tail = await next();
    const end = await next();
    expect(tail.frame).toEqual({ seq: 3, type: 'text', text: 'e' });
    expect(end.frame).toEqual({ seq: 4, type: 'end' });
    expect(end.at - t1).toBeLessThan(LINGER_MS / 2);
  });

  it('publishes a held frame once, also when the stream ends right after its linger ran out', async () => {
    const subject = env.subject('stream.once');
    const seen: number[] = [];
    const raw = nc.subscribe(subject, { callback: (_e, m) => void seen.push(m.json<TestFrame>().seq) });
    const linger = 50;
    const pub = new StreamPublisher<TestFrame>(nc, subject, 64, 5_000, { ...coalescing, lingerMs: linger });
    await pub.send({ type: 'text', text: 'a' });
    await sleep(5);
    await pub.send({ type: 'text', text: 'b' }); // held until the linger is up
    // Due in the same timers phase as the linger (a loaded process): the end comes before the flush.
    setTimeout(() => pub.finish({ type: 'end' }), linger - 3);
    const busyUntil = performance.now() + linger + 5;
    while (performance.now() < busyUntil);
    // Given time to arrive on a loaded machine, and a moment more for a second copy to show.
    await waitFor(async () => (seen.length >= 3 ? true : undefined), 'the held frame and the end', 3_000).catch(() => undefined);
    await sleep(100);
    raw.unsubscribe();
    expect(seen).toEqual([1, 2, 3]);
  });

  it('lets every send that waits for room go on when the consumer acknowledges', async () => {
    const narrow = new StreamPublisher<TestFrame>(nc, env.subject('stream.waiters.narrow'), 2, 1_000);
    const consumer = new StreamSubscriber<TestFrame>(nc, env.subject('stream.waiters.narrow'), 5_000, (f) => f.type === 'end');
    await narrow.send({ type: 'text', text: 'a' });
    await narrow.send({ type: 'text', text: 'b' }); // the window is full
    const first = narrow.send({ type: 'text', text: 'c' }).then(() => 'sent');
    await sleep(50);
    const second = narrow.send({ type: 'text', text: 'd' }).then(() => 'sent');
    await sleep(50);
    consumer.ack(2);
    expect(await Promise.all([first, second])).toEqual(['sent', 'sent']);
    expect(narrow.cancelled).toBe(false);
    narrow.close();
    consumer.close();
  });

  it('keeps the consumer hearing from a silent producer at least once per keep-alive period', async () => {
    const subject = env.subject('stream.keep-alive');
    const sub = new StreamSubscriber<TestFrame>(nc, subject, 5_000, (f) => f.type === 'end');
    const everyMs = 400;
    const pub = new StreamPublisher<TestFrame>(nc, subject, 64, 5_000, undefined, { everyMs, frame: { type: 'text', text: '' } });
    const arrivals: number[] = [performance.now()];
    const reading = (async () => {
      for await (const f of sub.frames()) {
        arrivals.push(performance.now());
        sub.ack(f.seq);
      }
    })();
    // A frame between two checks: a check once per period would next send almost two periods later.
    await sleep(everyMs / 4);
    await pub.send({ type: 'text', text: 'a' });
    await sleep(everyMs * 5);
    pub.finish({ type: 'end' });
    await reading;
    const gaps = arrivals.slice(1).map((t, i) => t - arrivals[i]);
    expect(gaps.length).toBeGreaterThanOrEqual(6);
    expect(Math.max(...gaps.slice(0, -1))).toBeLessThan(everyMs * 1.4);
  });

  it("takes the first cancel's word: a stream cancelled as unread stays unread when a plain cancel follows", async () => {
    const subject = env.subject('stream.cancelled-twice');
    const pub = new StreamPublisher<TestFrame>(nc, subject, 64, 5_000);
    const sub = new StreamSubscriber<TestFrame>(nc, subject, 5_000, (f) => f.type === 'end');
    await nc.flush();
    // What a gateway stopping during the call sends (the client is told 503), then its client's connection closing does.
    sub.cancel(true);
    sub.cancel();
    await sleep(20);
    await nc.flush();
    await waitFor(async () => (pub.cancelled ? true : undefined), 'the cancel');
    await sleep(50);
    expect(pub.unread).toBe(true);
    pub.close();
  });

  it('without coalescing sends every piece as a frame of its own', async () => {
    const { pub, next } = open('plain');
    for (const text of ['a', 'b', 'c']) await pub.send({ type: 'text', text });
    pub.finish({ type: 'end' });
    const got = [await next(), await next(), await next(), await next()].map((r) => r.frame);
    expect(got).toEqual([
      { seq: 1, type: 'text', text: 'a' },
      { seq: 2, type: 'text', text: 'b' },
      { seq: 3, type: 'text', text: 'c' },
      { seq: 4, type: 'end' },
    ]);
  });

  it('delivers the last frames of a producer whose connection drains right after it finished them (a replica that stops)', async () => {
    const producer = await connectNats({ url: env.natsUrl, name: 'stream-producer' });
    const subject = env.subject('stream.then-drained');
    const sub = new StreamSubscriber<TestFrame>(nc, subject, 5_000, (f) => f.type === 'end');
    const pub = new StreamPublisher<TestFrame>(producer, subject, 64, 5_000, coalescing);
    await nc.flush();
    await pub.send({ type: 'text', text: 'a' });
    await pub.send({ type: 'text', text: 'b' }); // merges into the first, not yet published
    pub.finish({ type: 'end' });
    await drainNats(producer);
    const got: TestFrame[] = [];
    for await (const f of sub.frames()) got.push(f);
    expect(got).toEqual([
      { seq: 1, type: 'text', text: 'ab' },
      { seq: 2, type: 'end' },
    ]);
  });

  it('ignores messages on its subjects that are not frames or control messages, and the connections go on reading', async () => {
    const { pub, next } = open('malformed');
    const subject = env.subject('stream.malformed');
    const other = await connectNats({ url: env.natsUrl, name: 'stream-stranger' });
    try {
      // A callback that threw would stop its connection reading for good: no frame, ack or request after it.
      for (const junk of ['not json', '', 'null', '[1]', '42', '{"seq":"x","type":"text"}', '{"seq":0,"type":"text"}', '{"seq":1}']) {
        other.publish(subject, junk);
        other.publish(`${subject}.ctl`, junk);
      }
      await other.flush();
      await pub.send({ type: 'text', text: 'still here' });
      pub.finish({ type: 'end' });
      expect((await next()).frame).toEqual({ seq: 1, type: 'text', text: 'still here' });
      expect((await next()).frame).toEqual({ seq: 2, type: 'end' });
      await expect(nc.rtt()).resolves.toBeGreaterThanOrEqual(0);
    } finally {
      await other.close();
    }
  });

  it('gives up at once, and stops the producer, when a frame was lost (a later one came first), not after the idle timeout', async () => {
    const subject = env.subject('stream.gap');
    const sub = new StreamSubscriber<TestFrame>(nc, subject, 5_000, (f) => f.type === 'end');
    const control: unknown[] = [];
    const ctl = nc.subscribe(`${subject}.ctl`, { callback: (_e, m) => void control.push(m.json()) });
    await nc.flush();
    // As a producer whose frame 2 went out while its connection was away: NATS delivers 1 and 3.
    nc.publish(subject, JSON.stringify({ seq: 1, type: 'text', text: 'a' }));
    nc.publish(subject, JSON.stringify({ seq: 3, type: 'text', text: 'c' }));
    const frames = sub.frames();
    expect((await frames.next()).value).toEqual({ seq: 1, type: 'text', text: 'a' });
    const t0 = performance.now();
    await expect(frames.next()).rejects.toThrow(StreamAbandoned);
    expect(performance.now() - t0).toBeLessThan(1_000);
    await waitFor(async () => control.length > 0, 'a cancel to the producer');
    expect(control).toEqual([{ cancel: true }]);
    ctl.unsubscribe();
  });

  it('gives up soon after its connection came back when the producer is not heard from again (its last frames went while NATS was away), not after the idle timeout', async () => {
    const server = new PrivateNatsServer();
    await server.start();
    const consumer = await connectNats({ url: server.url, name: 'stream-consumer' });
    try {
      const sub = new StreamSubscriber<TestFrame>(consumer, 'stream.after-reconnect', 30_000, (f) => f.type === 'end', 1_000);
      await consumer.flush();
      consumer.publish('stream.after-reconnect', JSON.stringify({ seq: 1, type: 'text', text: 'a' }));
      const frames = sub.frames();
      expect((await frames.next()).value).toEqual({ seq: 1, type: 'text', text: 'a' });
      const waiting = frames.next();
      // NATS restarts; the producer's end went while it was away and nothing more comes.
      await server.stop();
      await server.start();
      const t0 = performance.now();
      await expect(waiting).rejects.toThrow(/connection came back/);
      expect(performance.now() - t0).toBeLessThan(10_000);
    } finally {
      await consumer.close();
      await server.destroy();
    }
  });
});

describe(Pacer.name, () => {
  it('runs one pass for the wakes of a busy moment when it settles, and one more for a wake during a pass', async () => {
    let passes = 0;
    let release!: () => void;
    const pacer = new Pacer(
      () => {
        passes++;
        return new Promise<void>((r) => (release = r));
      },
      60_000,
      () => undefined,
      30,
    );
    pacer.start(); // the first wake settles too
    for (let i = 0; i < 10; i++) pacer.wake();
    expect(passes).toBe(0);
    await waitFor(async () => passes === 1, 'the first pass');
    for (let i = 0; i < 10; i++) pacer.wake(); // during the pass: exactly one more
    await sleep(60);
    expect(passes).toBe(1);
    release();
    await waitFor(async () => passes === 2, 'the one pass more');
    await sleep(60);
    expect(passes).toBe(2);
    release();
    await pacer.stop();
  });
});
