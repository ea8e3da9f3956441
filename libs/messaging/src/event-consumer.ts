import type { DataSource, EntityManager } from 'typeorm';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import {
  deadLetterSubject,
  eventEnvelopeSchema,
  eventsStreamName,
  eventSubject,
  withPrefix,
  type EventEnvelope,
} from '@ally/contracts';

export type EventHandler = (em: EntityManager, event: EventEnvelope) => Promise<void>;

export interface EventConsumerOptions {
  /** Durable name `<service>-<purpose>`. */
  durable: string;
  /** Event types, e.g. `identity.user.registered`. */
  types: string[];
  handler: EventHandler;
  dataSource: DataSource;
  nats: NatsConnection;
  prefix: string;
  logger: Logger;
  registry: Registry;
  /** Deliveries before a message is dead-lettered. */
  maxDeliver?: number;
  ackWaitMs?: number;
}

/**
 * A durable pull consumer whose handler runs in one transaction with the
 * inbox row: a redelivered event finds its id already there and has no second
 * effect. Acks only after commit; poison messages go to `ally.dlq.<durable>`.
 */
export class EventConsumer {
  private messages?: ConsumerMessages;
  private loop?: Promise<void>;
  private readonly deadLettered: Counter;
  private readonly processed: Counter;

  constructor(private readonly opts: EventConsumerOptions) {
    this.deadLettered = metric(opts.registry, 'ally_events_dead_lettered_total', 'Events moved to the dead-letter stream');
    this.processed = metric(opts.registry, 'ally_events_processed_total', 'Events handled by consumers');
  }

  get maxDeliver(): number {
    return this.opts.maxDeliver ?? 5;
  }

  async start(): Promise<void> {
    const { nats, prefix, durable } = this.opts;
    const stream = eventsStreamName(prefix);
    const jsm = await jetstreamManager(nats);
    const config = {
      durable_name: durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      filter_subjects: this.opts.types.map((t) => withPrefix(prefix, eventSubject(t))),
      // One more than our limit: we dead-letter ourselves on the last try.
      max_deliver: this.maxDeliver + 1,
      ack_wait: nanos(this.opts.ackWaitMs ?? 30_000),
    };
    try {
      await jsm.consumers.info(stream, durable);
      await jsm.consumers.update(stream, durable, config);
    } catch {
      await jsm.consumers.add(stream, config);
    }
    const consumer = await jetstream(nats).consumers.get(stream, durable);
    this.messages = await consumer.consume({ max_messages: 64 });
    this.loop = (async () => {
      for await (const msg of this.messages!) await this.handle(msg);
    })().catch((err) => this.opts.logger.error({ err: String(err), durable }, 'consumer loop ended'));
  }

  async stop(): Promise<void> {
    await this.messages?.close().catch(() => undefined);
    await this.loop;
  }

  private async handle(msg: JsMsg): Promise<void> {
    const { durable, logger } = this.opts;
    let event: EventEnvelope;
    try {
      event = eventEnvelopeSchema.parse(msg.json()) as EventEnvelope;
    } catch (err) {
      return this.deadLetter(msg, `invalid envelope: ${String(err).slice(0, 300)}`);
    }
    try {
      await this.opts.dataSource.transaction(async (em) => {
        const fresh = await em.query(
          `INSERT INTO inbox (event_id, consumer) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING event_id`,
          [event.id, durable],
        );
        if (fresh.length === 0) return; // seen before: the effect is already committed
        await this.opts.handler(em, event);
      });
      msg.ack();
      this.processed.inc();
    } catch (err) {
      if (msg.info.deliveryCount >= this.maxDeliver) return this.deadLetter(msg, String(err));
      const delay = Math.min(30_000, 250 * 2 ** msg.info.deliveryCount);
      logger.warn({ err: String(err), eventId: event.id, type: event.type, durable, attempt: msg.info.deliveryCount }, 'event handler failed; will retry');
      msg.nak(delay);
    }
  }

  private async deadLetter(msg: JsMsg, reason: string): Promise<void> {
    const { durable, prefix, nats, logger } = this.opts;
    try {
      await jetstream(nats).publish(withPrefix(prefix, deadLetterSubject(durable)), msg.data, {
        msgID: `${durable}:${msg.seq}`,
      });
      this.deadLettered.inc();
      logger.error({ durable, subject: msg.subject, seq: msg.seq, reason }, 'event dead-lettered');
      msg.term(reason.slice(0, 200));
    } catch (err) {
      logger.error({ err: String(err), durable }, 'dead-lettering failed; will retry');
      msg.nak(5_000);
    }
  }
}

function metric(registry: Registry, name: string, help: string): Counter {
  return (registry.getSingleMetric(name) as Counter | undefined) ?? new Counter({ name, help, registers: [registry] });
}
