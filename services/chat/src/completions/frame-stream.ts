import type { NatsConnection } from '@nats-io/transport-node';
import { withPrefix, type StreamFrame } from '@ally/contracts';
import { StreamPublisher, type FrameMerge } from '@ally/messaging';
import type { ChatConfig } from '../config.js';

/** Pieces of text that are ready together go as one: the user sees the same text, the gateway handles one frame. */
const mergeDeltas: FrameMerge<StreamFrame> = (queued, next) => (queued.type === 'delta' && next.type === 'delta' ? { type: 'delta', text: queued.text + next.text } : undefined);

/** The frames of one answer to the gateway's relay that asked for it (`target` from the RPC). */
export function openFrameStream(nats: NatsConnection, config: ChatConfig, target: { subject: string; window: number }): StreamPublisher<StreamFrame> {
  return new StreamPublisher<StreamFrame>(nats, withPrefix(config.NATS_SUBJECT_PREFIX, target.subject), target.window, config.STREAM_ACK_TIMEOUT_MS, mergeDeltas);
}
