import { Injectable } from '@nestjs/common';
import { PrivacyEvents } from '@ally/contracts';
import { EventConsumers } from '@ally/platform';

/**
 * An upheld objection (Art. 21) to the login audit, which rests on legitimate
 * interest: the subject's audit rows go, and later sign-ins are no longer
 * tied to them (failed attempts still count against the address hash, so
 * throttling keeps working).
 */
@Injectable()
export class ObjectionsConsumer {
  constructor(consumers: EventConsumers) {
    consumers.register({
      durable: 'identity-objections',
      types: ['privacy.subject.objection-upheld'],
      handler: async (em, event) => {
        const d = PrivacyEvents['privacy.subject.objection-upheld'].parse(event.data);
        if (!d.categories.includes('login-audit')) return;
        await em.query(`UPDATE users SET login_audit_objected = true WHERE id = $1`, [d.userId]);
        await em.query(`DELETE FROM login_audit WHERE user_id = $1`, [d.userId]);
      },
    });
  }
}
