import { Inject, Injectable } from '@nestjs/common';
import type { ServerResponse } from 'node:http';
import { nuid, type NatsConnection } from '@nats-io/transport-node';
import { withPrefix } from '@ally/contracts';
import { cancelCall } from '@ally/messaging';
import { NATS } from '@ally/platform';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config.js';

/** How often a cancel is said again until chat answers: it may not have been listening yet. */
const REPEAT_MS = 500;

/**
 * A non-streamed completion the HTTP client can call off: `call` gets a
 * subject to name in its RPC (`cancel`); when the connection closes before
 * the answer, chat hears `{ cancel: true }` there and aborts the provider call,
 * as it does for a stream.
 */
@Injectable()
export class CancellableCalls {
  constructor(
    @Inject(NATS) private readonly nats: NatsConnection,
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
  ) {}

  async run<T>(raw: ServerResponse, call: (cancel: string) => Promise<T>): Promise<T> {
    const subject = `ally.stream.gateway.${nuid.next()}`;
    let repeat: NodeJS.Timeout | undefined;
    const gone = () => {
      if (raw.writableFinished) return;
      const say = () => cancelCall(this.nats, withPrefix(this.config.NATS_SUBJECT_PREFIX, subject));
      say();
      repeat = setInterval(say, REPEAT_MS);
    };
    raw.once('close', gone);
    try {
      return await call(subject);
    } finally {
      raw.removeListener('close', gone);
      clearInterval(repeat);
    }
  }
}
