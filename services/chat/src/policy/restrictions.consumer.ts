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
        if (event.type === 'privacy.subject.restriction-lifted') {
          // Only the lifted request's: another restriction of the same scope still stands.
          const d = PrivacyEvents['privacy.subject.restriction-lifted'].parse(event.data);
          await em.query(`DELETE FROM restrictions WHERE request_id = $1`, [d.requestId]);
          return;
        }
        const d = PrivacyEvents['privacy.subject.restricted'].parse(event.data);
        // Filed while their erasure ran: nothing of them is left to restrict, and no row of them comes back.
        if (await policies.isErased(em, d.userId)) return;
        await em.query(`INSERT INTO restrictions (user_id, scope, request_id) VALUES ($1, $2, $3) ON CONFLICT (request_id) DO NOTHING`, [d.userId, d.scope, d.requestId]);
      },
    });
  }
}
