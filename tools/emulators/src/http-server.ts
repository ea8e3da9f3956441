import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

export interface EmulatorServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

export type Handler = (req: IncomingMessage, body: string, url: URL) => Promise<{ status: number; body?: unknown; headers?: Record<string, string> }>;

/** A tiny JSON HTTP server: the emulators speak their vendor's wire format on top of it. */
export async function serveJson(handler: Handler, port = 0, host = '127.0.0.1'): Promise<EmulatorServer> {
  const server: Server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const url = new URL(req.url ?? '/', `http://${req.headers.host ?? host}`);
    try {
      const out = await handler(req, Buffer.concat(chunks).toString('utf8'), url);
      res.writeHead(out.status, { 'content-type': 'application/json', ...(out.headers ?? {}) });
      res.end(out.body === undefined ? '' : JSON.stringify(out.body));
    } catch (err) {
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ code: 'internal_error', message: String(err) }));
    }
  });
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  const bound = (server.address() as { port: number }).port;
  return {
    url: `http://${host}:${bound}`,
    port: bound,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
