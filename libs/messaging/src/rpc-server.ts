import { ServerNats } from '@nestjs/microservices';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { ProblemError, withPrefix } from '@ally/contracts';

export interface RpcServerOptions {
  connection: NatsConnection;
  /** `NATS_SUBJECT_PREFIX`. */
  prefix: string;
  /** Queue group: the service name, so replicas share the load. */
  queue: string;
}

/**
 * Nest's NATS transport, on the process's shared connection and with every
 * subject prefixed. Handlers keep their unprefixed `@MessagePattern` subjects.
 */
export class RpcServer extends ServerNats {
  private readonly subs: Subscription[] = [];
  /** Requests being handled: their answers go out before the connection and the pool they use are closed. */
  private inFlight = 0;
  private idle?: () => void;
  /** How to answer each request still being handled (its reply subject), should the stop outlast it. */
  private readonly answering = new Map<unknown, (response: unknown) => unknown>();

  constructor(private readonly rpc: RpcServerOptions) {
    super({ queue: rpc.queue });
  }

  override async createNatsClient(): Promise<any> {
    return this.rpc.connection;
  }

  override bindEvents(client: any): void {
    for (const channel of this.messageHandlers.keys()) {
      const handler = this.messageHandlers.get(channel);
      const queue = (handler?.extras?.queue as string | undefined) ?? this.rpc.queue;
      const sub: Subscription = client.subscribe(withPrefix(this.rpc.prefix, channel), {
        queue,
        callback: this.getMessageHandler(channel).bind(this),
      });
      this.subs.push(sub);
    }
  }

  /**
   * Our subjects are plain strings, never JSON: skip Nest's JSON.parse attempt,
   * which throws (and costs ~6% of a service's CPU) on every message.
   */
  override getRouteFromPattern(pattern: string): string {
    return pattern;
  }

  /**
   * A reply the broker refuses (over its message limit) would leave the caller
   * waiting for its timeout; it gets a 500 at once instead, and the fault is
   * logged: a handler must page what can grow.
   */
  override getPublisher(natsMsg: any, id: string, ctx: any): (response: any) => any {
    const publish = super.getPublisher(natsMsg, id, ctx);
    this.answering.set(natsMsg, publish);
    return (response) => {
      try {
        return publish(response);
      } catch (err) {
        if (!/max_payload/i.test(String((err as Error)?.message))) throw err;
        this.logger.error(`The reply on ${natsMsg.subject} exceeds the broker's message limit: ${(err as Error).message}`);
        return publish({ err: new ProblemError(500, 'The answer was too large to send').toProblem(), isDisposed: true });
      }
    };
  }

  override async handleMessage(channel: string, natsMsg: any): Promise<any> {
    this.inFlight++;
    try {
      return await super.handleMessage(channel, natsMsg);
    } finally {
      this.answering.delete(natsMsg);
      if (--this.inFlight === 0) this.idle?.();
    }
  }

  /** Stops taking requests; the shared connection is drained by its owner, after `settled`. */
  override async close(): Promise<void> {
    await Promise.all(this.subs.map((s) => s.drain().catch(() => undefined)));
    this.subs.length = 0;
  }

  /**
   * Resolves once every request taken has been answered, or at `deadline` (ms since the epoch): a stopping
   * service answers what it took instead of leaving the callers to their timeout with nothing done.
   */
  async settled(deadline: number): Promise<void> {
    if (this.inFlight === 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
      this.idle = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    // Those the grace could not wait for hear a 503 now (ask again: another replica answers), not the caller's timeout.
    for (const publish of this.answering.values()) {
      publish({ err: new ProblemError(503, `The ${this.rpc.queue} service stopped before it answered; try again`, { retryAfter: 1 }).toProblem(), isDisposed: true });
    }
    this.answering.clear();
  }
}
