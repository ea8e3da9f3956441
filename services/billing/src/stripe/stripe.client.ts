import { Inject, Injectable } from '@nestjs/common';
import Stripe from 'stripe';
import type { Logger } from 'pino';
import { ProblemError } from '@ally/contracts';
import { LOGGER } from '@ally/platform';
import { BILLING_CONFIG, type BillingConfig } from '../config.js';

/**
 * The official Stripe SDK. Without STRIPE_SECRET_KEY (development, tests) it
 * talks to the Stripe emulator at STRIPE_API_URL and says so; production
 * refuses to start without a key (see config).
 */
@Injectable()
export class StripeClient {
  readonly stripe: Stripe;
  readonly emulated: boolean;

  constructor(
    @Inject(BILLING_CONFIG) config: BillingConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    const url = config.STRIPE_API_URL ? new URL(config.STRIPE_API_URL) : undefined;
    this.emulated = !config.STRIPE_SECRET_KEY;
    this.stripe = new Stripe(config.STRIPE_SECRET_KEY ?? 'sk_test_emulator', {
      maxNetworkRetries: 2,
      timeout: 20_000,
      ...(url ? { host: url.hostname, port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)), protocol: url.protocol.replace(':', '') as 'http' | 'https' } : {}),
    });
    if (this.emulated) logger.info({ stripe: config.STRIPE_API_URL }, `${config.NODE_ENV}: no STRIPE_SECRET_KEY, billing talks to the Stripe emulator`);
  }

  /** Deletes a customer at Stripe (its payment methods; Stripe keeps invoices for tax law); one already gone is no error. */
  async deleteCustomer(customerId: string): Promise<void> {
    await this.stripe.customers.del(customerId).catch((err: { statusCode?: number }) => {
      if (err?.statusCode !== 404) throw err;
    });
  }

  /**
   * What Stripe, as processor, holds of a customer for a subject's export: the contact Checkout collected (name,
   * email, phone, billing address) and its tax IDs. Stripe away is a 503 (the export is asked again); a customer
   * Stripe no longer has holds nothing.
   */
  async customerDetails(customerId: string): Promise<Record<string, unknown> | null> {
    try {
      // Tax IDs come only when asked for (since API version 2020-08-27).
      const c = await this.stripe.customers.retrieve(customerId, { expand: ['tax_ids'] });
      if ('deleted' in c && c.deleted) return null;
      const customer = c as Stripe.Customer;
      return { name: customer.name ?? null, email: customer.email ?? null, phone: customer.phone ?? null, address: customer.address ?? null, taxIds: (customer.tax_ids?.data ?? []).map((t) => ({ type: t.type, value: t.value })) };
    } catch (err) {
      if (isStripeAway(err)) throw new ProblemError(503, 'Stripe is not available; the export asks again once it answers', { retryAfter: 5 });
      if (!isStripeRefusal(err)) throw err;
      return null;
    }
  }

  /** A subscription's quantity to the member count (at least one seat), prorated; see `change`. */
  setSeats(workspace: string, subscriptionId: string, itemId: string, members: number, idempotencyKey: string): Promise<void> {
    return this.change(workspace, 'the seat count', () =>
      this.stripe.subscriptions.update(subscriptionId, { items: [{ id: itemId, quantity: Math.max(1, members) }], proration_behavior: 'create_prorations' }, { idempotencyKey }),
    );
  }

  /** A subscription ends with the period already paid; see `change`. */
  endAtPeriodEnd(workspace: string, subscriptionId: string, idempotencyKey: string): Promise<void> {
    return this.change(workspace, 'the end of the subscription', () => this.stripe.subscriptions.update(subscriptionId, { cancel_at_period_end: true }, { idempotencyKey }));
  }

  /** Cancelled now, with no invoice for it: Stripe stops asking for what is owed on it. */
  cancelNow(workspace: string, subscriptionId: string, idempotencyKey: string): Promise<void> {
    return this.change(workspace, 'the cancellation of the subscription', () => this.stripe.subscriptions.cancel(subscriptionId, { invoice_now: false, prorate: false }, { idempotencyKey }));
  }

  /**
   * A customer's subscriptions as Stripe has them, in every status. Stripe away is a 503, as for a change; a
   * customer Stripe no longer has has none.
   */
  async listSubscriptions(workspace: string, customer: string): Promise<Stripe.Subscription[]> {
    try {
      return (await this.stripe.subscriptions.list({ customer, status: 'all', limit: 100 })).data;
    } catch (err) {
      if (isStripeAway(err)) throw new ProblemError(503, 'Stripe is not available; asked again once it answers', { retryAfter: 5 });
      if (!isStripeRefusal(err)) throw err;
      this.logger.warn({ err: String(err), workspace }, "Stripe refused to list the customer's subscriptions; taken as none");
      return [];
    }
  }

  /**
   * A change an event or a webhook asks of Stripe, whose webhook then tells what holds. Stripe away (no connection,
   * 429, 5xx, after the SDK's own retries) or refusing our key (401, 403) is a 503, so the event waits for it as for
   * our database instead of counting as broken and being dead-lettered. Stripe refusing the change itself (a
   * subscription ended there, its webhook still on its way) is logged: asking again will not help, and what our own
   * transaction changed stays.
   */
  private async change(workspace: string, what: string, call: () => Promise<unknown>): Promise<void> {
    try {
      await call();
    } catch (err) {
      if (isStripeAway(err)) throw new ProblemError(503, 'Stripe is not available; the change is made once it answers again', { retryAfter: 5 });
      if (!isStripeRefusal(err)) throw err;
      this.logger.warn({ err: String(err), workspace }, `Stripe refused ${what}; its next webhook tells what holds`);
    }
  }
}

function isStripeAway(err: unknown): boolean {
  const { errors } = Stripe;
  if (err instanceof errors.StripeConnectionError || err instanceof errors.StripeRateLimitError || err instanceof errors.StripeAPIError) return true;
  // Our key refused (rotated, restricted): ours to mend, and the change waits for it rather than being dropped.
  if (err instanceof errors.StripeAuthenticationError || err instanceof errors.StripePermissionError) return true;
  return err instanceof errors.StripeError && (err.statusCode ?? 0) >= 500;
}

/**
 * Stripe refused the change itself (a subscription that ended there, whose webhook is still on its way; a key
 * used with other parameters): asking again will not help, and the webhook that follows tells what holds.
 */
export function isStripeRefusal(err: unknown): boolean {
  const { errors } = Stripe;
  return err instanceof errors.StripeInvalidRequestError || err instanceof errors.StripeIdempotencyError;
}
