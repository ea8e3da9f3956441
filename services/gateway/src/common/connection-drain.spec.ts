import { describe, expect, it } from '@jest/globals';
import Fastify from 'fastify';
import { request } from 'node:http';
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
});
