import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { PrivacyEvents, type EventEnvelope } from '@ally/contracts';
import { EventConsumers } from '@ally/platform';
import { isErasedSubject } from './erasure-mark.js';

/** Restrictions of processing (Art. 18) and their lifts, kept per request (see `isRestricted`). */
@Injectable()
export class RestrictionsConsumer {
  constructor(consumers: EventConsumers) {
    consumers.register({
      durable: 'notify-restrictions',
      types: ['privacy.subject.restricted', 'privacy.subject.restriction-lifted'],
      handler: (em, event) => this.handle(em, event),
    });
  }

  private async handle(em: EntityManager, event: EventEnvelope): Promise<void> {
    const lifted = event.type === 'privacy.subject.restriction-lifted';
    const d = PrivacyEvents[lifted ? 'privacy.subject.restriction-lifted' : 'privacy.subject.restricted'].parse(event.data);
    if (await isErasedSubject(em, d.userId)) return;
    await keepPause(em, d, lifted);
  }
}

/**
 * A request's pause of the mails its subject may do without (a restriction, an objection), or its end (`lifted`).
 * An end that arrives before its pause (a redelivery) stays an end; a pause again after its end changes nothing.
 */
export async function keepPause(em: EntityManager, request: { requestId: string; userId: string; scope: string }, lifted: boolean): Promise<void> {
  await em.query(
    `INSERT INTO restrictions (request_id, user_id, scope, lifted_at) VALUES ($1, $2, $3, CASE WHEN $4 THEN now() END)
     ON CONFLICT (request_id) DO UPDATE SET lifted_at = coalesce(restrictions.lifted_at, EXCLUDED.lifted_at)`,
    [request.requestId, request.userId, request.scope, lifted],
  );
}

/**
 * Whether the user restricted the processing of what a mail is about: the
 * whole account, or the workspace it concerns (`orgId`, or their private one);
 * an objection to mail not rejected counts as a restriction of the whole account (`ObjectionsConsumer`).
 */
export async function isRestricted(em: EntityManager, userId: string, orgId: string | undefined): Promise<boolean> {
  const rows = await em.query(`SELECT 1 FROM restrictions WHERE user_id = $1 AND lifted_at IS NULL AND scope IN ('all', $2) LIMIT 1`, [userId, orgId ?? 'private']);
  return rows.length > 0;
}
