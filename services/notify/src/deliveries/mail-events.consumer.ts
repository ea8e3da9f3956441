import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { randomUUID } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import type { EventEnvelope } from '@ally/contracts';
import { EventConsumer } from '@ally/messaging';
import { CONFIG, LOGGER, NATS } from '@ally/platform';
import { hashAddress } from '../common/address-hash.js';
import type { NotifyConfig } from '../config.js';
import { MAIL_CATALOG, MAIL_EVENT_TYPES } from '../mails/mail-catalog.js';
import { DeliveryWorker } from './delivery-worker.js';

/**
 * Turns events into deliveries. The inbox (in EventConsumer) and the unique
 * (event, template) pair make a redelivered event produce no second mail; the
 * worker sends what this writes.
 */
@Injectable()
export class MailEventsConsumer implements OnApplicationBootstrap, OnApplicationShutdown {
  private consumer?: EventConsumer;

  constructor(
    private readonly ds: DataSource,
    private readonly worker: DeliveryWorker,
    @Inject(NATS) private readonly nats: NatsConnection,
    @Inject(CONFIG) private readonly config: NotifyConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly registry: Registry,
  ) {}

  async onApplicationBootstrap() {
    this.consumer = new EventConsumer({
      durable: 'notify-mail',
      types: MAIL_EVENT_TYPES,
      handler: (em, event) => this.handle(em, event),
      dataSource: this.ds,
      nats: this.nats,
      prefix: this.config.NATS_SUBJECT_PREFIX,
      logger: this.logger,
      registry: this.registry,
    });
    await this.consumer.start();
  }

  async onApplicationShutdown() {
    await this.consumer?.stop();
  }

  async handle(em: EntityManager, event: EventEnvelope): Promise<void> {
    const spec = MAIL_CATALOG[event.type]?.(event);
    if (!spec) return;
    await em.query(
      `INSERT INTO deliveries (id, event_id, template, locale, user_id, recipient, recipient_hash, variables, required)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (event_id, template) DO NOTHING`,
      [randomUUID(), event.id, spec.template, spec.locale, spec.userId, spec.to, hashAddress(spec.to), JSON.stringify(spec.variables), spec.required ?? false],
    );
    // Commit first; the worker polls anyway, this only saves the wait.
    setImmediate(() => this.worker.wake());
  }
}
