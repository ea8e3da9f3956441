import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { PrivacyEvents, type EventEnvelope } from '@ally/contracts';
import { EventConsumers } from '@ally/platform';
import { isErasedSubject } from './erasure-mark.js';
import { keepPause } from './restrictions.consumer.js';

const DELIVERY_LOG = 'delivery-log';

/**
 * Objections (Art. 21) to mail, which rests on legitimate interest: from the
 * objection on, the mails the subject may do without pause as under a
 * restriction of the whole account (`isRestricted`; security and legally
 * required mails still go); upheld, they stay paused; rejected for compelling
 * grounds, they resume. Kept beside restrictions, by request.
 */
@Injectable()
export class ObjectionsConsumer {
  constructor(consumers: EventConsumers) {
    consumers.register({
      durable: 'notify-objections',
      types: ['privacy.subject.objected', 'privacy.request.decided'],
      handler: (em, event) => this.handle(em, event),
    });
  }

  private async handle(em: EntityManager, event: EventEnvelope): Promise<void> {
    if (event.type === 'privacy.subject.objected') {
      const d = PrivacyEvents['privacy.subject.objected'].parse(event.data);
      if (!d.categories.includes(DELIVERY_LOG) || (await isErasedSubject(em, d.userId))) return;
      // Of the whole account: mail belongs to no workspace.
      return keepPause(em, { ...d, scope: 'all' }, false);
    }
    const d = PrivacyEvents['privacy.request.decided'].parse(event.data);
    if (d.type !== 'objection' || d.decision !== 'reject' || (await isErasedSubject(em, d.userId))) return;
    // Rejected: mail resumes.
    await keepPause(em, { ...d, scope: 'all' }, true);
  }
}
