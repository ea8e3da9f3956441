import { ClientNats, NatsRecordBuilder } from '@nestjs/microservices';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { firstValueFrom, timeout, TimeoutError } from 'rxjs';
import {
  isProblem,
  ProblemError,
  withPrefix,
  type Actor,
  type RequestMeta,
  type RpcContract,
  type RpcInput,
  type RpcReply,
} from '@ally/contracts';
import { inboxPrefixOf } from './nats-connection.js';
import type { z } from 'zod';

export const CORRELATION_HEADER = 'x-correlation-id';

export interface RpcCallOptions {
  actor?: Actor;
  meta?: RequestMeta;
  timeoutMs?: number;
}

/**
 * Typed request/reply over Nest's NATS client on the shared connection.
 * Errors come back as problems and are rethrown as ProblemError, so callers
 * (the gateway's filter) can answer with the right status.
 */
export class RpcClient extends ClientNats {
  constructor(
    private readonly connection: NatsConnection,
    private readonly prefix: string,
    private readonly defaultTimeoutMs = 10_000,
  ) {
    // Replies come to the connection's inbox prefix, the only one its NATS user may read.
    super({ inboxPrefix: inboxPrefixOf(connection) });
  }

  override async createClient(): Promise<any> {
    return this.connection;
  }

  override async close(): Promise<void> {
    this.handleClose();
  }

  protected override normalizePattern(pattern: unknown): string {
    return withPrefix(this.prefix, super.normalizePattern(pattern as string));
  }

  async call<C extends RpcContract<z.ZodType, unknown>>(
    contract: C,
    input: RpcInput<C>,
    opts: RpcCallOptions = {},
  ): Promise<RpcReply<C>> {
    const h = natsHeaders();
    if (opts.meta?.correlationId) h.set(CORRELATION_HEADER, opts.meta.correlationId);
    const record = new NatsRecordBuilder({ actor: opts.actor, input, meta: opts.meta }).setHeaders(h).build();
    const ms = opts.timeoutMs ?? this.defaultTimeoutMs;
    try {
      return (await firstValueFrom(this.send(contract.subject, record).pipe(timeout(ms)))) as RpcReply<C>;
    } catch (err) {
      // Anything else is a fault of ours: thrown as it is, so the error filter logs it before its 500.
      throw toProblemError(err, contract.subject) ?? err;
    }
  }
}

/**
 * This caller stopped waiting for `service` (a 504). Only the caller's own: a 504 another service answered (its
 * own wait for a third one ran out) arrives as a plain ProblemError, so a caller can tell the two apart.
 */
export class RpcTimeout extends ProblemError {
  constructor(readonly service: string) {
    super(504, `No answer from ${service} in time`);
  }
}

function toProblemError(err: unknown, subject: string): ProblemError | undefined {
  if (err instanceof ProblemError) return err;
  if (isProblem(err)) return new ProblemError(err.status, err.detail ?? err.title, err);
  const service = subject.split('.')[2];
  if (err instanceof TimeoutError) return new RpcTimeout(service);
  const message = (err as { message?: string; code?: string })?.message ?? String(err);
  // The broker's message limit (1 MB by default) is below the body limit once a body is encoded for the call.
  if (/max_payload/i.test(message)) return new ProblemError(413, `The request is too large to pass on to the ${service} service`);
  // Nobody answers the subject (the service is down): NATS says "no responders", Nest's client "no subscribers listening".
  if (/no responders|no subscribers listening|503|closed|disconnect|CONNECTION/i.test(message) || (err as { code?: string })?.code === '503') {
    // A restart or a reconnect takes seconds: the client hears when asking again makes sense.
    return new ProblemError(503, `The ${service} service is not available`, { retryAfter: 5 });
  }
  return undefined;
}
