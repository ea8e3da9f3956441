import { Inject, Injectable } from '@nestjs/common';
import { once } from 'node:events';
import { nuid, type NatsConnection } from '@nats-io/transport-node';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { ProblemError, withPrefix, type ResidencyReceipt, type StreamFrame } from '@ally/contracts';
import { StreamAbandoned, StreamSubscriber } from '@ally/messaging';
import { LOGGER, NATS } from '@ally/platform';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config.js';

/** Frames the gateway lets chat run ahead; acks go back every half window (each is a NATS message to chat). */
const WINDOW = 64;
const ACK_EVERY = WINDOW / 2;
/** chat sends a heartbeat every 10 s while the model thinks; silence longer than this means it is gone. */
const IDLE_TIMEOUT_MS = 35_000;

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
  ) {}

  async relay(
    req: FastifyRequest,
    reply: FastifyReply,
    start: (target: { subject: string; window: number }) => Promise<unknown>,
    format: SseFormat,
  ): Promise<void> {
    const subject = `ally.stream.gateway.${nuid.next()}`;
    const sub = new StreamSubscriber<StreamFrame>(this.nats, withPrefix(this.config.NATS_SUBJECT_PREFIX, subject), IDLE_TIMEOUT_MS, (f) => f.type === 'done' || f.type === 'error');
    try {
      await start({ subject, window: WINDOW });
    } catch (err) {
      sub.close();
      throw err;
    }
    const raw = reply.raw;
    let finished = false;
    raw.on('close', () => {
      if (!finished) sub.cancel();
    });
    const open = (residency?: ResidencyReceipt) => {
      if (raw.headersSent) return;
      reply.hijack();
      raw.writeHead(200, {
        ...(reply.getHeaders() as Record<string, string>),
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
        ...(residency ? { 'x-ally-residency': JSON.stringify(residency) } : {}),
      });
    };
    try {
      for await (const frame of sub.frames()) {
        if (raw.destroyed) break;
        if (frame.type === 'error' && !raw.headersSent) {
          const { status, detail, title, type } = frame.problem;
          throw new ProblemError(status, detail ?? title, { type });
        }
        if (frame.type === 'start') open(frame.residency);
        else open();
        const text = frame.type === 'heartbeat' ? ': keep-alive\n\n' : format.frame(frame);
        if (text && !raw.write(text)) await once(raw, 'drain');
        if (frame.seq % ACK_EVERY === 0 || frame.type === 'heartbeat') sub.ack(frame.seq);
      }
    } catch (err) {
      if (!(err instanceof StreamAbandoned)) throw err;
      this.logger.warn({ reason: err.message }, 'stream from chat broke off');
      if (!raw.headersSent) throw new ProblemError(503, 'The answer stream broke off; please try again');
      if (!raw.destroyed) raw.write(format.broken('The answer stream broke off; please try again'));
    } finally {
      finished = true;
      if (raw.headersSent && !raw.destroyed) raw.end();
    }
  }
}

export const sse = (event: string | null, data: unknown): string => `${event ? `event: ${event}\n` : ''}data: ${JSON.stringify(data)}\n\n`;
