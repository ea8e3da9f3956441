import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { IdentityEvents, type EventEnvelope } from '@ally/contracts';
import { EventConsumers } from '@ally/platform';
import { StripeClient } from '../stripe/stripe.client.js';
import { LIVE_STATUSES } from './subscriptions.service.js';

/**
 * An organisation dissolved (its last member was erased) has nobody left to
 * use what it pays for or to cancel it in the Customer Portal: its live
 * subscription ends with the period already paid (the event id as
 * idempotency key; Stripe's webhook then records it).
 */
@Injectable()
export class DissolutionConsumer {
  constructor(
    consumers: EventConsumers,
    private readonly stripe: StripeClient,
  ) {
    consumers.register({ durable: 'billing-dissolutions', types: ['identity.organization.dissolved'], handler: (em, event) => this.apply(em, event) });
  }

  private async apply(em: EntityManager, event: EventEnvelope): Promise<void> {
    const { orgId } = IdentityEvents['identity.organization.dissolved'].parse(event.data);
    const [sub]: { stripe_subscription_id: string; status: string; cancel_at_period_end: boolean }[] = await em.query(
      `SELECT stripe_subscription_id, status, cancel_at_period_end FROM subscriptions WHERE workspace = $1`,
      [orgId],
    );
    if (!sub || !LIVE_STATUSES.includes(sub.status) || sub.cancel_at_period_end) return;
    // Refused (ended at Stripe already, its webhook on its way): nothing left to cancel.
    await this.stripe.endAtPeriodEnd(orgId, sub.stripe_subscription_id, `dissolved:${event.id}`);
  }
}
