import { Inject, Injectable } from '@nestjs/common';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { nuid, type NatsConnection } from '@nats-io/transport-node';
import { ANSWER_BROKE_OFF, ANSWER_STOPPED_FOR_RESTART, ProblemError, withPrefix } from '@ally/contracts';
import { cancelCall, RpcTimeout } from '@ally/messaging';
import { NATS } from '@ally/platform';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config.js';
import { AnswersAtShutdown } from './answers-at-shutdown.js';

const clientTimeoutOf = (req: IncomingMessage | undefined) => req?.headers['x-stainless-timeout'] ?? req?.headers['x-stainless-read-timeout'];

/** How often a cancel is said again until chat answers: it may not have been listening yet. */
const REPEAT_MS = 500;

/**
 * How long to wait for a whole answer: `COMPLETION_TIMEOUT_MS`, or less when the client says it gives up sooner
 * (the openai SDKs send their timeout in seconds: `X-Stainless-Timeout` from JavaScript, `X-Stainless-Read-Timeout`
 * from Python, `30.0`): the gateway's 504, which tells the client not to ask again, has to reach it before it gives
 * up and asks again on its own, each time billed.
 */
export function answerWaitMs(configuredMs: number, clientTimeout: string | string[] | undefined): number {
  const seconds = typeof clientTimeout === 'string' && /^\d{1,6}(\.\d{1,3})?$/.test(clientTimeout) ? Number(clientTimeout) : undefined;
  if (!seconds) return configuredMs;
  const clientMs = seconds * 1000;
  return Math.max(500, Math.min(configuredMs, clientMs - Math.min(5_000, clientMs / 10)));
}

/**
 * A non-streamed completion the HTTP client can call off: `call` gets a
 * subject to name in its RPC (`cancel`); when the connection closes before
 * the answer, or the gateway itself stops waiting, chat hears
 * `{ cancel: true }` there and aborts the provider call, as for a stream.
 */
@Injectable()
export class CancellableCalls {
  constructor(
    @Inject(NATS) private readonly nats: NatsConnection,
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
    private readonly answers: AnswersAtShutdown,
  ) {}

  /** `call` gets the subject to name and how long the gateway waits for the answer (`answerWaitMs`). */
  async run<T>(raw: ServerResponse, call: (cancel: string, timeoutMs: number) => Promise<T>): Promise<T> {
    // Gone already (while the body was read, say): nothing to start.
    if (raw.destroyed) throw new ProblemError(499, 'The client went away');
    const subject = `ally.stream.gateway.${nuid.next()}`;
    const say = () => cancelCall(this.nats, withPrefix(this.config.NATS_SUBJECT_PREFIX, subject));
    // Said until chat answers: it listens only once it has the request.
    let repeat: NodeJS.Timeout | undefined;
    const callOff = () => {
      say();
      repeat ??= setInterval(say, REPEAT_MS);
    };
    const gone = () => {
      if (!raw.writableFinished) callOff();
    };
    raw.once('close', gone);
    // A replica told to stop calls it off as a client leaving would: chat answers the RPC with the stop.
    let stopping = false;
    const release = this.answers.track(() => {
      stopping = true;
      callOff();
    });
    try {
      return await call(subject, answerWaitMs(this.config.COMPLETION_TIMEOUT_MS, clientTimeoutOf((raw as ServerResponse & { req?: IncomingMessage }).req)));
    } catch (err) {
      if (stopping) throw new ProblemError(503, ANSWER_STOPPED_FOR_RESTART, { retryAfter: 1 });
      // We stopped waiting (504): chat stops too, or it would save and bill an answer nobody gets. The openai SDK and
      // others retry a 5xx unless told not to: each retry would be generated, cut off and billed again; so would one
      // of an answer the provider broke off after it had sent text. A 504 chat answered for another reason (its own
      // wait for billing or identity ran out) generated nothing: asking again is safe.
      if (err instanceof RpcTimeout) say();
      const billed = err instanceof RpcTimeout || (err instanceof ProblemError && err.extra.type === ANSWER_BROKE_OFF);
      if (billed && !raw.headersSent) raw.setHeader('x-should-retry', 'false');
      throw err;
    } finally {
      release();
      raw.removeListener('close', gone);
      clearInterval(repeat);
    }
  }
}
