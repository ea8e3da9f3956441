import { describe, expect, it } from '@jest/globals';
import { createServer, request, type ClientRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { drained } from './sse-relay.service.js';

/** A server's response to a client that read the headers and then nothing. */
async function stalledStream(): Promise<{ response: ServerResponse; client: IncomingMessage; req: ClientRequest; close: () => Promise<void> }> {
  let response: ServerResponse | undefined;
  const server = createServer((_req, res) => {
    response = res;
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.flushHeaders();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  let client: IncomingMessage | undefined;
  const req = request({ host: '127.0.0.1', port, path: '/' }, (res) => {
    client = res;
    res.pause();
  });
  req.on('error', () => undefined);
  req.end();
  while (!response || !client) await new Promise((r) => setTimeout(r, 10));
  return {
    response,
    client,
    req,
    close: async () => {
      req.destroy();
      response?.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

const MB = `data: ${'x'.repeat(1024 * 1024)}\n\n`;

describe('waiting for room to write an answer stream', () => {
  it('gives up on a client that keeps its connection open and stops reading', async () => {
    const { response, close } = await stalledStream();
    try {
      // The kernel's buffers take some megabytes first; then nothing more leaves.
      let room = true;
      for (let written = 0; room && written < 512; written++) if (!response.write(MB)) room = await drained(response, 300);
      expect(room).toBe(false);
    } finally {
      await close();
    }
  });

  it('goes on at once when the connection closes while it waits', async () => {
    const { response, req, close } = await stalledStream();
    try {
      while (response.write(MB));
      const waiting = drained(response, 30_000);
      req.destroy();
      const t0 = performance.now();
      expect(await waiting).toBe(true);
      expect(performance.now() - t0).toBeLessThan(5_000);
    } finally {
      await close();
    }
  });
});
