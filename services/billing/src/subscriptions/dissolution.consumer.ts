import { Inject, Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { IdentityEvents, type EventEnvelope } from '@ally/contracts';
import { EventConsumers, LOGGER } from '@ally/platform';
import type { Logger } from 'pino';
import { isStripeRefusal, StripeClient } from '../stripe/stripe.client.js';
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
    @Inject(LOGGER) private readonly logger: Logger,
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
    await this.stripe
      .whenAvailable(() => this.stripe.stripe.subscriptions.update(sub.stripe_subscription_id, { cancel_at_period_end: true }, { idempotencyKey: `dissolved:${event.id}` }))
      .catch((err) => {
        if (!isStripeRefusal(err)) throw err;
        // Ended at Stripe already (its webhook on its way): nothing left to cancel.
        this.logger.warn({ err: String(err), workspace: orgId }, 'Stripe refused to end the dissolved organisation’s subscription; its webhook tells what holds');
      });
  }
}
