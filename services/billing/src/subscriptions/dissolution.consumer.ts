import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { IdentityEvents, type EventEnvelope } from '@ally/contracts';
import { EventConsumers } from '@ally/platform';
import { StripeClient } from '../stripe/stripe.client.js';
import { ENDED_STATUSES } from './subscriptions.service.js';

/** A subscription whose period is paid for: it runs to the period's end. */
const PAID_FOR = ['active', 'trialing'];

/**
 * An organisation dissolved (its last member was erased) has nobody left to
 * use what it pays for or to cancel it in the Customer Portal: every
 * subscription its customer has at Stripe that has not ended ends with the
 * period already paid, or now when it is not paid for (asked of Stripe, not
 * of our mirror, which a webhook on its way may not have reached; the event
 * and subscription ids as idempotency key; Stripe's webhook then records it).
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
    const [customer]: { stripe_customer_id: string }[] = await em.query(`SELECT stripe_customer_id FROM customers WHERE workspace = $1`, [orgId]);
    // No customer: nothing was ever set up at Stripe.
    if (!customer) return;
    const subscriptions = await this.stripe.listSubscriptions(orgId, customer.stripe_customer_id);
    // Either refused (ended at Stripe meanwhile, its webhook on its way) leaves nothing to cancel.
    for (const sub of subscriptions) {
      if (ENDED_STATUSES.includes(sub.status)) continue;
      if (PAID_FOR.includes(sub.status)) {
        if (!sub.cancel_at_period_end) await this.stripe.endAtPeriodEnd(orgId, sub.id, `dissolved:${event.id}:${sub.id}`);
      } else {
        // Not paid for (past due, unpaid, its first payment still open): Stripe would go on asking a card nobody
        // answers for; it ends now.
        await this.stripe.cancelNow(orgId, sub.id, `dissolved:${event.id}:${sub.id}:now`);
      }
    }
  }
}
