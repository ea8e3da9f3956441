import type { FastifyInstance } from 'fastify';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { ProblemError } from '@ally/contracts';

/**
 * At shutdown, a connection carrying no request closes at once, and one
 * carrying an answer (a stream, say) as soon as that answer ends. Node closes
 * only the idle keep-alive connections it knows: one that never sent a
 * request (a browser's preconnect, a client's spare socket) held the shutdown
 * until the headers timeout, a minute past the grace period. A request that
 * still arrives on a connection being drained (sent right behind the answer
 * before, or pipelined) is a 503 problem saying to ask again, with
 * Connection: close; Fastify's own answer there (`return503OnClosing`, which
 * the server is started without) is plain JSON.
 */
export function drainConnectionsOnClose(fastify: FastifyInstance): { readonly tracked: number } {
  const answering = new Map<Socket, number>();
  let closing = false;
  fastify.server.on('connection', (socket: Socket) => {
    answering.set(socket, 0);
    socket.once('close', () => answering.delete(socket));
  });
  fastify.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket;
    answering.set(socket, (answering.get(socket) ?? 0) + 1);
    res.once('close', () => {
      const answers = answering.get(socket);
      // The connection closed first (the client left mid-answer): it is forgotten, not put back.
      if (answers === undefined) return;
      const left = Math.max(0, answers - 1);
      answering.set(socket, left);
      if (closing && left === 0) socket.end();
    });
  });
  fastify.addHook('onRequest', async (_req, reply) => {
    if (!closing) return;
    const problem = new ProblemError(503, 'The gateway is restarting; please send the request again').toProblem();
    return reply.code(503).header('connection', 'close').header('retry-after', '1').type('application/problem+json').send(problem);
  });
  fastify.addHook('preClose', async () => {
    closing = true;
    for (const [socket, n] of answering) if (n === 0) socket.destroy();
  });
  return {
    /** Connections it keeps track of (for tests). */
    get tracked() {
      return answering.size;
    },
  };
}
