import { describe, expect, it } from '@jest/globals';
import Fastify from 'fastify';
import { request } from 'node:http';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { drainConnectionsOnClose } from './connection-drain.js';

describe('connections drained at shutdown', () => {
  it('forgets a connection its client closed while the answer was still being written', async () => {
    const app = Fastify();
    const drain = drainConnectionsOnClose(app);
    app.get('/stream', (_req, reply) => {
      reply.hijack();
      reply.raw.writeHead(200, { 'content-type': 'text/event-stream' });
      reply.raw.write('data: first\n\n'); // and nothing more: the client leaves before the end
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      const { port } = app.server.address() as { port: number };
      for (let i = 0; i < 5; i++) {
        await new Promise<void>((resolve, reject) => {
          const req = request({ host: '127.0.0.1', port, path: '/stream' }, (res) => {
            res.once('data', () => {
              req.destroy();
              resolve();
            });
          });
          req.once('error', (err) => (req.destroyed ? undefined : reject(err)));
          req.end();
        });
      }
      // Each closed connection went from the map with its socket (they stayed, one per client that left, for ever).
      for (let i = 0; i < 50 && drain.tracked > 0; i++) await sleep(20);
      expect(drain.tracked).toBe(0);
    } finally {
      await app.close();
    }
  });

  it('answers a request that arrives on a connection being drained with a 503 problem saying to ask again, after the answer before it', async () => {
    const app = Fastify({ return503OnClosing: false });
    drainConnectionsOnClose(app);
    let slowStarted = false;
    app.get('/slow', async () => {
      slowStarted = true;
      await sleep(300);
      return { slow: true };
    });
    app.get('/fast', async () => ({ fast: true }));
    await app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = app.server.address() as { port: number };
    const socket = connect(port, '127.0.0.1');
    let received = '';
    socket.on('data', (chunk) => (received += chunk.toString()));
    const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.write('GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\n');
    while (!slowStarted) await sleep(5);
    const closed = app.close();
    await sleep(30);
    // Sent behind the answer still being made, once the shutdown began.
    socket.write('GET /fast HTTP/1.1\r\nHost: localhost\r\n\r\n');
    await ended;
    await closed;
    const [first, second] = received.split(/(?=HTTP\/1\.1 )/);
    expect(first).toMatch(/^HTTP\/1\.1 200/);
    expect(first).toContain('{"slow":true}');
    expect(second).toMatch(/^HTTP\/1\.1 503/);
    expect(second.toLowerCase()).toContain('content-type: application/problem+json');
    expect(second.toLowerCase()).toContain('retry-after: 1');
    expect(second.toLowerCase()).toContain('connection: close');
    expect(JSON.parse(second.slice(second.indexOf('\r\n\r\n') + 4))).toMatchObject({ status: 503, detail: expect.stringMatching(/send the request again/) });
  });
});
