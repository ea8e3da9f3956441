import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { randomUUID } from 'node:crypto';
import type { EventEnvelope } from '@ally/contracts';
import { EventConsumers } from '@ally/platform';
import { hashAddress } from '../common/address-hash.js';
import { MAIL_CATALOG, MAIL_EVENT_TYPES } from '../mails/mail-catalog.js';
import { DeliveryWorker } from './delivery-worker.js';

/**
 * Turns events into deliveries. The inbox (in EventConsumer) and the unique
 * (event, template) pair make a redelivered event produce no second mail; the
 * worker sends what this writes.
 */
@Injectable()
export class MailEventsConsumer {
  constructor(
    consumers: EventConsumers,
    private readonly worker: DeliveryWorker,
  ) {
    consumers.register({ durable: 'notify-mail', types: MAIL_EVENT_TYPES, handler: (em, event) => this.handle(em, event) });
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
