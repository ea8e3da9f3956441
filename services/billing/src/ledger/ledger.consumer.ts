import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { ChatEvents, type EventEnvelope } from '@ally/contracts';
import { EventConsumer } from '@ally/messaging';
import { CONFIG, LOGGER, NATS } from '@ally/platform';
import { workspaceKey } from '../common/workspace-key.js';
import type { BillingConfig } from '../config.js';
import { QuotaAlerts } from '../quota/quota-alerts.service.js';

/**
 * `chat.completion.recorded` → one ledger entry per message id. The inbox
 * makes a redelivery harmless, and the message id as primary key makes even
 * a second publication of the same completion harmless.
 */
@Injectable()
export class LedgerConsumer implements OnApplicationBootstrap, OnApplicationShutdown {
  private consumer?: EventConsumer;

  constructor(
    private readonly ds: DataSource,
    private readonly alerts: QuotaAlerts,
    @Inject(NATS) private readonly nats: NatsConnection,
    @Inject(CONFIG) private readonly config: BillingConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly registry: Registry,
  ) {}

  async onApplicationBootstrap() {
    this.consumer = new EventConsumer({
      durable: 'billing-ledger',
      types: ['chat.completion.recorded'],
      handler: (em, event) => this.record(em, event),
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

  async record(em: EntityManager, event: EventEnvelope): Promise<void> {
    const d = ChatEvents['chat.completion.recorded'].parse(event.data);
    const key = workspaceKey(d.workspace, d.userId);
    const inserted = await em.query(
      `INSERT INTO ledger (message_id, workspace, user_id, model, deployment, prompt_tokens, completion_tokens, tokens, cost, period)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (message_id) DO NOTHING RETURNING message_id`,
      [d.messageId, key, d.userId, d.model, d.deployment, d.promptTokens, d.completionTokens, d.promptTokens + d.completionTokens, d.cost, event.occurredAt.slice(0, 7)],
    );
    if (inserted.length) await this.alerts.afterUsage(em, key, event.occurredAt.slice(0, 7), d.promptTokens + d.completionTokens);
  }
}
