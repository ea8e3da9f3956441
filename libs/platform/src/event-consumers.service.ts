import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { DataSource } from 'typeorm';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { EventConsumer, type EventConsumerOptions } from '@ally/messaging';
import { CONFIG, LOGGER, NATS } from './tokens.js';

export type ConsumerSpec = Pick<EventConsumerOptions, 'durable' | 'inbox' | 'types' | 'handler' | 'batchHandler' | 'oneAtATime' | 'afterCommit' | 'maxDeliver' | 'ackWaitMs'>;

/**
 * A service's durable JetStream consumers: features register theirs (in
 * their constructor), and all start once the application is up and stop
 * before it closes. The platform supplies connection, database, metrics.
 */
@Injectable()
export class EventConsumers implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly specs: ConsumerSpec[] = [];
  private readonly running: EventConsumer[] = [];

  constructor(
    private readonly ds: DataSource,
    @Inject(NATS) private readonly nats: NatsConnection,
    @Inject(CONFIG) private readonly config: { NATS_SUBJECT_PREFIX: string },
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly registry: Registry,
  ) {}

  register(spec: ConsumerSpec): void {
    this.specs.push(spec);
  }

  /**
   * Whether each of this service's consumers of `type` has handled the event: its inbox row commits with the
   * handler's effects, so a row there is the effect done (until the inbox's 30 days are up). With no consumer
   * of the type, nothing here was to be done: handled.
   */
  async handled(eventId: string, type: string): Promise<{ handled: boolean; consumers: number }> {
    const inboxes = [...new Set(this.specs.filter((s) => s.types.includes(type)).map((s) => s.inbox ?? s.durable))];
    if (!inboxes.length) return { handled: true, consumers: 0 };
    const [{ found }] = await this.ds.query(`SELECT count(DISTINCT consumer)::int AS found FROM inbox WHERE event_id = $1 AND consumer = ANY($2)`, [eventId, inboxes]);
    return { handled: found === inboxes.length, consumers: inboxes.length };
  }

  async onApplicationBootstrap() {
    for (const spec of this.specs) {
      const consumer = new EventConsumer({
        ...spec,
        dataSource: this.ds,
        nats: this.nats,
        prefix: this.config.NATS_SUBJECT_PREFIX,
        logger: this.logger,
        registry: this.registry,
      });
      await consumer.start();
      this.running.push(consumer);
    }
  }

  async onApplicationShutdown() {
    await Promise.all(this.running.map((c) => c.stop()));
  }
}
