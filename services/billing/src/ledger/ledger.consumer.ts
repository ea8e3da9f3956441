import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { ChatEvents, type EventEnvelope } from '@ally/contracts';
import { EventConsumers } from '@ally/platform';
import { workspaceKey } from '../common/workspace-key.js';
import { QuotaAlerts } from '../quota/quota-alerts.service.js';

/**
 * `chat.completion.recorded` → one ledger entry per message id. The inbox
 * makes a redelivery harmless, and the message id as primary key makes even
 * a second publication of the same completion harmless.
 */
@Injectable()
export class LedgerConsumer {
  constructor(
    consumers: EventConsumers,
    private readonly alerts: QuotaAlerts,
  ) {
    consumers.register({ durable: 'billing-ledger', types: ['chat.completion.recorded'], handler: (em, event) => this.record(em, event) });
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
