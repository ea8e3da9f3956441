import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { PrivacyEvents, type EventEnvelope } from '@ally/contracts';
import { EventConsumers } from '@ally/platform';

/**
 * Restrictions of processing (Art. 18) of the whole account: from the
 * restriction until its lift, sign-ins are recorded as for an objection, not
 * tied to the subject (the audit rows already there are only stored). A
 * restriction of one workspace leaves the account's sign-ins alone.
 */
@Injectable()
export class RestrictionsConsumer {
  constructor(consumers: EventConsumers) {
    consumers.register({
      durable: 'identity-restrictions',
      types: ['privacy.subject.restricted', 'privacy.subject.restriction-lifted'],
      handler: (em, event) => this.handle(em, event),
    });
  }

  private async handle(em: EntityManager, event: EventEnvelope): Promise<void> {
    if (event.type === 'privacy.subject.restricted') {
      const d = PrivacyEvents['privacy.subject.restricted'].parse(event.data);
      if (d.scope !== 'all') return;
      // Nothing to restrict for an account erased since; a lift that came first (a redelivery) stays a lift.
      await em.query(`INSERT INTO restrictions (request_id, user_id) SELECT $1, id FROM users WHERE id = $2 ON CONFLICT DO NOTHING`, [d.requestId, d.userId]);
      return;
    }
    if (event.type === 'privacy.subject.restriction-lifted') {
      const d = PrivacyEvents['privacy.subject.restriction-lifted'].parse(event.data);
      await em.query(
        `INSERT INTO restrictions (request_id, user_id, lifted_at) SELECT $1, id, now() FROM users WHERE id = $2
         ON CONFLICT (request_id) DO UPDATE SET lifted_at = coalesce(restrictions.lifted_at, now())`,
        [d.requestId, d.userId],
      );
    }
  }
}
