import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { PrivacyEvents, type EventEnvelope } from '@ally/contracts';
import { EventConsumers } from '@ally/platform';

const LOGIN_AUDIT = 'login-audit';

/**
 * Objections (Art. 21) to the login audit, and the IP and user agent kept with sessions, which rest on
 * legitimate interest.
 * From the objection on, sign-ins are no longer tied to the subject (failed
 * attempts still count against the address hash, so throttling keeps
 * working); an upheld objection also deletes their audit rows for good, a
 * rejected one (compelling grounds) lets the audit resume.
 */
@Injectable()
export class ObjectionsConsumer {
  constructor(consumers: EventConsumers) {
    consumers.register({
      durable: 'identity-objections',
      types: ['privacy.subject.objected', 'privacy.subject.objection-upheld', 'privacy.request.decided'],
      handler: (em, event) => this.handle(em, event),
    });
  }

  private async handle(em: EntityManager, event: EventEnvelope): Promise<void> {
    switch (event.type) {
      case 'privacy.subject.objected': {
        const d = PrivacyEvents['privacy.subject.objected'].parse(event.data);
        // The login audit is the whole account's: an objection for one workspace leaves it alone.
        if (d.scope !== 'all' || !d.categories.includes(LOGIN_AUDIT)) return;
        // Nothing to pause for an account erased since; nor for an objection decided already (this event came again).
        await em.query(`INSERT INTO objections (request_id, user_id) SELECT $1, id FROM users WHERE id = $2 ON CONFLICT DO NOTHING`, [d.requestId, d.userId]);
        return;
      }
      case 'privacy.subject.objection-upheld': {
        const d = PrivacyEvents['privacy.subject.objection-upheld'].parse(event.data);
        if (d.scope !== 'all' || !d.categories.includes(LOGIN_AUDIT)) return;
        await em.query(`UPDATE users SET login_audit_objected = true WHERE id = $1`, [d.userId]);
        // Under a legal hold or a restriction what was recorded stays (nothing new is): its period deletes it later.
        if (d.keep) return;
        await em.query(`DELETE FROM login_audit WHERE user_id = $1`, [d.userId]);
        // The IP and user agent their sessions were opened with serve the same interest (sessions opened since keep none).
        await em.query(`UPDATE sessions SET ip = NULL, user_agent = NULL WHERE user_id = $1 AND (ip IS NOT NULL OR user_agent IS NOT NULL)`, [d.userId]);
        return;
      }
      case 'privacy.request.decided': {
        const d = PrivacyEvents['privacy.request.decided'].parse(event.data);
        // Decided either way (an upheld objection holds through login_audit_objected, from its own event);
        // kept as decided, even when this arrives before the objection itself (a redelivery).
        if (d.type === 'objection') {
          await em.query(
            `INSERT INTO objections (request_id, user_id, decided_at) SELECT $1, id, now() FROM users WHERE id = $2
             ON CONFLICT (request_id) DO UPDATE SET decided_at = coalesce(objections.decided_at, now())`,
            [d.requestId, d.userId],
          );
        }
        return;
      }
    }
  }
}
