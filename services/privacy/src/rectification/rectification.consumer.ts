import { Inject, Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { IdentityEvents, type EventEnvelope } from '@ally/contracts';
import { EventConsumers } from '@ally/platform';
import { PRIVACY_CONFIG, type PrivacyConfig } from '../config.js';
import { RequestsService } from '../requests/requests.service.js';

/** Fields whose change is a rectification that processors holding copies must hear of (Art. 19). */
const PERSONAL_FIELDS = new Set(['firstName', 'lastName', 'email', 'locale']);

/** Records rectifications done in identity (PATCH /v1/me) with the processors told. */
@Injectable()
export class RectificationConsumer {
  constructor(
    consumers: EventConsumers,
    private readonly requests: RequestsService,
    @Inject(PRIVACY_CONFIG) config: PrivacyConfig,
  ) {
    if (config.PRIVACY_WORKER === 'on') {
      // One event per transaction: each takes its subject's request lock, and two subjects' in one transaction
      // (with the audit lock between them) deadlocked with a request being filed.
      consumers.register({ durable: 'privacy-rectification', types: ['identity.user.updated'], oneAtATime: true, handler: (em, event) => this.handle(em, event) });
    }
  }

  async handle(em: EntityManager, event: EventEnvelope): Promise<void> {
    const data = IdentityEvents['identity.user.updated'].parse(event.data);
    const changed = data.changed.filter((f) => PERSONAL_FIELDS.has(f));
    if (changed.length) await this.requests.recordRectification(em, data.userId, changed, event.id);
  }
}
