import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { NatsConnection } from '@nats-io/transport-node';
import { connectNats } from '@ally/messaging';
import { createTestEnv, waitFor, type TestEnv } from '@ally/testing';

describe(connectNats.name, () => {
  let env: TestEnv;
  let listener: NatsConnection;

  beforeAll(async () => {
    env = await createTestEnv();
    listener = await env.nats();
  });

  afterAll(async () => {
    await env?.close();
  });

  it("writes one turn's messages together, in the order they were sent", async () => {
    const subject = `${env.prefix}.order`;
    const seen: string[] = [];
    const sub = listener.subscribe(subject, { callback: (_err, msg) => void seen.push(msg.string()) });
    await listener.flush();
    const nc = await connectNats({ url: env.natsUrl, name: 'order-test' });
    // Counts the socket writes (the client's transport, pinned with the lock file).
    const transport = (nc as unknown as { protocol: { transport: { send(data: Uint8Array): void } } }).protocol.transport;
    const send = transport.send.bind(transport);
    let writes = 0;
    transport.send = (data) => {
      writes++;
      send(data);
    };
    // Published from different microtasks of one turn, as a handler's reply and a stream's first frame are.
    for (let i = 0; i < 50; i++) queueMicrotask(() => nc.publish(subject, String(i)));
    await waitFor(async () => seen.length === 50, 'the 50 messages');
    expect(seen).toEqual(Array.from({ length: 50 }, (_, i) => String(i)));
    expect(writes).toBe(1);
    sub.unsubscribe();
    await nc.close();
  });

  it('a message sent just before the connection closes still reaches the server', async () => {
    const subject = `${env.prefix}.last-words`;
    const seen: string[] = [];
    const sub = listener.subscribe(subject, { callback: (_err, msg) => void seen.push(msg.string()) });
    await listener.flush();
    const nc = await connectNats({ url: env.natsUrl, name: 'close-test' });
    nc.publish(subject, 'bye');
    await nc.close();
    await waitFor(async () => seen.includes('bye'), 'the last message');
    sub.unsubscribe();
  });
});
