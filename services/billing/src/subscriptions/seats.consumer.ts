import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { IdentityEvents, type EventEnvelope } from '@ally/contracts';
import { EventConsumers } from '@ally/platform';
import { StripeClient } from '../stripe/stripe.client.js';
import { LIVE_STATUSES } from './subscriptions.service.js';

/**
 * Seats follow the organisation's member count: identity's member events
 * update the count, and a live subscription's quantity at Stripe (the event
 * and the subscription item as idempotency key, so a redelivery changes
 * nothing twice; a change Stripe refuses is left to the next webhook). A member who
 * joined while Checkout was open is caught up by the subscription's webhook.
 * A member's removal also deletes their spend cap in the organisation.
 */
@Injectable()
export class SeatsConsumer {
  constructor(
    consumers: EventConsumers,
    private readonly stripe: StripeClient,
  ) {
    // One organisation per transaction: each holds its count's row while Stripe is asked.
    consumers.register({ durable: 'billing-seats', types: ['identity.member.added', 'identity.member.removed'], oneAtATime: true, handler: (em, event) => this.apply(em, event) });
  }

  private async apply(em: EntityManager, event: EventEnvelope): Promise<void> {
    const d = IdentityEvents[event.type as 'identity.member.added'].parse(event.data);
    const applied = await em.query(
      `INSERT INTO seat_counts (workspace, members, updated_at) VALUES ($1, $2, $3)
       ON CONFLICT (workspace) DO UPDATE SET members = EXCLUDED.members, updated_at = EXCLUDED.updated_at WHERE seat_counts.updated_at <= EXCLUDED.updated_at
       RETURNING workspace`,
      // Ordered by identity's database time of the count; an older release's event has its replica's clock only.
      [d.orgId, d.memberCount, d.countedAt ?? event.occurredAt],
    );
    // A member who left takes their spend cap with them (it names them, and limits no one), also when this event
    // comes again after a newer count (a Stripe failure rolled its first delivery back); not a cap set after the
    // removal, once they had rejoined.
    if (event.type === 'identity.member.removed') {
      await em.query(`DELETE FROM caps WHERE workspace = $1 AND user_id = $2 AND set_at <= $3`, [d.orgId, d.userId, event.occurredAt]);
    }
    // An older count than the one we hold (events out of order) changes nothing, at Stripe neither.
    if (applied.length === 0) return;
    const [sub] = await em.query(`SELECT stripe_subscription_id, stripe_item_id, status, seats FROM subscriptions WHERE workspace = $1`, [d.orgId]);
    if (!sub || !LIVE_STATUSES.includes(sub.status) || !sub.stripe_item_id || sub.seats === d.memberCount) return;
    // The item in the key: a retry after the subscription's item changed is another request, not a reused key.
    // Refused, the count (and a leaver's cap) stays changed here; the subscription's next webhook sets Stripe's quantity from it.
    await this.stripe.setSeats(d.orgId, sub.stripe_subscription_id, sub.stripe_item_id, d.memberCount, `seats:${event.id}:${sub.stripe_item_id}`);
  }
}
