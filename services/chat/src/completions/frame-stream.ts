import type { NatsConnection } from '@nats-io/transport-node';
import { withPrefix, type ResidencyReceipt, type StreamFrame } from '@ally/contracts';
import { CallCancellation, StreamPublisher, type Coalescing } from '@ally/messaging';
import type { ChatConfig } from '../config.js';
import type { AnswerSink } from './completion.service.js';

/**
 * Pieces of text travel together when they follow each other closely: the
 * user reads the same text (a 20 ms gap is below a screen refresh), while the
 * broker, the gateway and the client handle a fraction of the frames. So do
 * the pieces of one tool call's arguments (a new call, with its id, starts a frame of its own).
 */
const coalescing = (lingerMs: number): Coalescing<StreamFrame> => ({
  lingerMs,
  holds: (frame) => frame.type === 'delta' || frame.type === 'tool_call',
  merge: (queued, next) => {
    if (queued.type === 'delta' && next.type === 'delta') return { type: 'delta', text: queued.text + next.text };
    if (queued.type === 'tool_call' && next.type === 'tool_call' && next.index === queued.index && next.id === undefined && next.name === undefined) {
      return { ...queued, arguments: queued.arguments + next.arguments };
    }
    return undefined;
  },
});

/** The frames of one answer to the gateway's relay that asked for it (`target` from the RPC). */
export function openFrameStream(nats: NatsConnection, config: ChatConfig, target: { subject: string; window: number }): StreamPublisher<StreamFrame> {
  return new StreamPublisher<StreamFrame>(nats, withPrefix(config.NATS_SUBJECT_PREFIX, target.subject), target.window, config.STREAM_ACK_TIMEOUT_MS, coalescing(config.STREAM_COALESCE_MS), {
    everyMs: config.STREAM_HEARTBEAT_MS,
    frame: { type: 'heartbeat' },
  });
}

/** A streamed answer's receipt and pieces, as frames to `publisher`. */
export function framesTo(publisher: StreamPublisher<StreamFrame>, messageId?: string): AnswerSink {
  return {
    start: (residency: ResidencyReceipt) => publisher.send({ type: 'start', residency, ...(messageId ? { messageId } : {}) }),
    delta: (text: string) => publisher.send({ type: 'delta', text }),
    toolCall: (piece) => publisher.send({ type: 'tool_call', ...piece }),
  };
}

/** Where the gateway says the client of a non-streamed call went away (`cancel` from the RPC), if it named one. */
export function listenForCancel(nats: NatsConnection, config: ChatConfig, cancel: string | undefined): CallCancellation | undefined {
  return cancel ? new CallCancellation(nats, withPrefix(config.NATS_SUBJECT_PREFIX, cancel)) : undefined;
}
