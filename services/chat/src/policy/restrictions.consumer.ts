import { Injectable } from '@nestjs/common';
import { PrivacyEvents } from '@ally/contracts';
import { EventConsumers } from '@ally/platform';
import { PolicyService } from './policy.service.js';

/**
 * Art. 18: the subject's data may only be stored; chat stops processing it in
 * that scope. A consumer of its own, apart from identity's replica: before
 * NATS 2.10 a consumer has one filter, and one covering both identity's and
 * privacy's events would also receive (and skip) every usage event chat writes.
 */
@Injectable()
export class RestrictionsConsumer {
  constructor(consumers: EventConsumers, policies: PolicyService) {
    consumers.register({
      durable: 'chat-restrictions',
      types: ['privacy.subject.restricted', 'privacy.subject.restriction-lifted'],
      handler: async (em, event) => {
        // Filed while their erasure ran: nothing of them is left to restrict, and no row of them comes back.
        if (event.type === 'privacy.subject.restriction-lifted') {
          // Only the lifted request's: another restriction of the same scope still stands. The row stays, marked, so the
          // restriction arriving after it (or at once, on another replica) finds it lifted instead of restricting again.
          const d = PrivacyEvents['privacy.subject.restriction-lifted'].parse(event.data);
          if (await policies.isErased(em, d.userId)) return;
          await em.query(
            `INSERT INTO restrictions (user_id, scope, request_id, lifted_at) VALUES ($1, $2, $3, now())
             ON CONFLICT (request_id) DO UPDATE SET lifted_at = coalesce(restrictions.lifted_at, now())`,
            [d.userId, d.scope, d.requestId],
          );
          return;
        }
        const d = PrivacyEvents['privacy.subject.restricted'].parse(event.data);
        if (await policies.isErased(em, d.userId)) return;
        await em.query(`INSERT INTO restrictions (user_id, scope, request_id) VALUES ($1, $2, $3) ON CONFLICT (request_id) DO NOTHING`, [d.userId, d.scope, d.requestId]);
      },
    });
  }
}
