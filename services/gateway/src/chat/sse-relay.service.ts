import { Inject, Injectable } from '@nestjs/common';
import type { ServerResponse } from 'node:http';
import { nuid, type NatsConnection } from '@nats-io/transport-node';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { ANSWER_STOPPED_FOR_RESTART, ProblemError, STREAM_SILENCE_LIMIT_MS, withPrefix, type ResidencyReceipt, type StreamFrame } from '@ally/contracts';
import { RpcTimeout, StreamAbandoned, StreamSubscriber } from '@ally/messaging';
import { LOGGER, NATS } from '@ally/platform';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config.js';
import { AnswersAtShutdown } from './answers-at-shutdown.js';
import { RESIDENCY_HEADER, residencyHeaderValue } from './residency-header.js';

/** Frames the gateway lets chat run ahead; acks go back every half window (each is a NATS message to chat). */
const WINDOW = 64;
const ACK_EVERY = WINDOW / 2;

export interface SseFormat {
  /** The SSE text for a frame; null writes nothing. */
  frame(frame: StreamFrame): string | null;
  /** The SSE text when the stream broke off. */
  broken(detail: string): string;
}

/**
 * Relays a completion from chat (NATS frames) to the browser (SSE). Nothing
 * is written until the first frame, so refusals (policy, quota, the content
 * filter, also a provider's own prompt filter, and no deployment answering)
 * are ordinary problem+json answers with their status. A client that goes away
 * cancels the provider call; socket backpressure holds the acks, which holds chat.
 */
@Injectable()
export class SseRelay {
  constructor(
    @Inject(NATS) private readonly nats: NatsConnection,
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly answers: AnswersAtShutdown,
  ) {}

  async relay(
    req: FastifyRequest,
    reply: FastifyReply,
    start: (target: { subject: string; window: number }) => Promise<unknown>,
    format: SseFormat,
  ): Promise<void> {
    const subject = `ally.stream.gateway.${nuid.next()}`;
    const sub = new StreamSubscriber<StreamFrame>(this.nats, withPrefix(this.config.NATS_SUBJECT_PREFIX, subject), STREAM_SILENCE_LIMIT_MS, (f) => f.type === 'done' || f.type === 'error');
    const raw = reply.raw;
    let finished = false;
    let clientLeft = false;
    let stopping = false;
    let waitingForRoom = false;
    const release = this.answers.track(() => {
      stopping = true;
      // Before the first frame the client is answered 503 and asks again: chat is to keep nothing of this one.
      sub.cancel(!raw.headersSent);
      // A client that stopped reading cannot be told: its connection goes with the replica.
      if (waitingForRoom) raw.destroy();
    });
    // Listening from the start: a client gone while chat still decides cancels the call too.
    raw.once('close', () => {
      if (finished) return;
      clientLeft = true;
      sub.cancel();
    });
    try {
      await start({ subject, window: WINDOW });
    } catch (err) {
      finished = true;
      release();
      // Timed out: chat may still accept and answer into a stream nobody reads, saving and billing a
      // turn the client was told failed. It hears a cancel as soon as it starts sending instead.
      if (err instanceof RpcTimeout) sub.cancelWhenHeard(STREAM_SILENCE_LIMIT_MS);
      else sub.close();
      throw err;
    }
    // Gone during the RPC, or the replica stopping meanwhile: say it again, now that chat listens for it (once: the
    // client's connection closing after its 503 is no second word).
    if (clientLeft || raw.destroyed) {
      finished = true;
      release();
      sub.cancel();
      return clientGone(reply);
    }
    if (stopping) {
      finished = true;
      release();
      sub.cancel(true);
      throw new ProblemError(503, ANSWER_STOPPED_FOR_RESTART, { retryAfter: 1 });
    }
    const open = (residency?: ResidencyReceipt) => {
      reply.hijack();
      raw.writeHead(200, {
        ...(reply.getHeaders() as Record<string, string>),
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store, no-transform',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
        ...(residency ? { [RESIDENCY_HEADER]: residencyHeaderValue(residency) } : {}),
      });
      // Sent now, not with the first token: the client knows the answer began, and where, while the model thinks.
      raw.flushHeaders();
    };
    try {
      for await (const frame of sub.frames()) {
        if (raw.destroyed) {
          sub.cancel();
          break;
        }
        if (!raw.headersSent) {
          if (frame.type === 'error') throw new ProblemError(frame.problem.status, frame.problem.detail ?? frame.problem.title, frame.problem);
          // The model still thinks: nothing to show, and the answer can still be a plain status.
          if (frame.type === 'heartbeat') {
            sub.ack(frame.seq);
            continue;
          }
          open(frame.type === 'start' ? frame.residency : undefined);
        }
        const text = frame.type === 'heartbeat' ? ': keep-alive\n\n' : format.frame(frame);
        if (text && !raw.write(text)) {
          waitingForRoom = true;
          const room = await drained(raw, STREAM_SILENCE_LIMIT_MS);
          waitingForRoom = false;
          if (!room) {
            // Connected but no longer reading: chat stops on its own silence, and this stream and its connection end too.
            this.logger.info('the client stopped reading the answer stream; its connection is closed');
            sub.cancel();
            raw.destroy();
            break;
          }
        }
        if (frame.seq % ACK_EVERY === 0 || frame.type === 'heartbeat') sub.ack(frame.seq);
      }
      // Stopped with the replica: the client hears why, as when chat breaks off.
      if (stopping && !raw.headersSent) throw new ProblemError(503, ANSWER_STOPPED_FOR_RESTART, { retryAfter: 1 });
      if (stopping && !raw.destroyed) raw.write(format.broken(ANSWER_STOPPED_FOR_RESTART));
    } catch (err) {
      if (!(err instanceof StreamAbandoned)) throw err;
      this.logger.warn({ reason: err.message }, 'stream from chat broke off');
      if (!raw.headersSent) throw new ProblemError(503, 'The answer stream broke off; please try again');
      if (!raw.destroyed) raw.write(format.broken('The answer stream broke off; please try again'));
    } finally {
      finished = true;
      release();
      if (clientLeft || raw.destroyed) clientGone(reply);
      else if (raw.headersSent) raw.end();
    }
  }
}

/** The client left: the request and its connection end here (an unanswered request is not left for Fastify to wait on). */
function clientGone(reply: FastifyReply): void {
  if (!reply.raw.headersSent) reply.hijack();
  reply.raw.destroy();
}

/**
 * Room in the socket again, or the socket is gone (then `drain` never comes): true; false when neither came
 * within `limitMs` (a client that keeps its connection open and stops reading would hold the stream for ever).
 */
export function drained(raw: ServerResponse, limitMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (room: boolean) => () => {
      clearTimeout(timer);
      raw.removeListener('drain', onRoom);
      raw.removeListener('close', onRoom);
      resolve(room);
    };
    const onRoom = done(true);
    const timer = setTimeout(done(false), limitMs);
    raw.once('drain', onRoom);
    raw.once('close', onRoom);
  });
}

export const sse = (event: string | null, data: unknown): string => `${event ? `event: ${event}\n` : ''}data: ${JSON.stringify(data)}\n\n`;
