import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { PrivacyEvents, type EventEnvelope } from '@ally/contracts';
import { EventConsumers } from '@ally/platform';
import { isErasedSubject } from './erasure-mark.js';

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
      // An objection decided already (this event came again after its decision) stays as decided.
      await em.query(`INSERT INTO restrictions (request_id, user_id, scope) VALUES ($1, $2, 'all') ON CONFLICT (request_id) DO NOTHING`, [d.requestId, d.userId]);
      return;
    }
    const d = PrivacyEvents['privacy.request.decided'].parse(event.data);
    if (d.type !== 'objection' || d.decision !== 'reject' || (await isErasedSubject(em, d.userId))) return;
    // Rejected: mail resumes, also when this arrives before the objection itself (a redelivery).
    await em.query(
      `INSERT INTO restrictions (request_id, user_id, scope, lifted_at) VALUES ($1, $2, 'all', now())
       ON CONFLICT (request_id) DO UPDATE SET lifted_at = coalesce(restrictions.lifted_at, now())`,
      [d.requestId, d.userId],
    );
  }
}
