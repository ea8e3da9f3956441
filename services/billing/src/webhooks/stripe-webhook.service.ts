import { Inject, Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import type Stripe from 'stripe';
import type { Logger } from 'pino';
import { Counter, Registry } from 'prom-client';
import { BillingEvents, ProblemError } from '@ally/contracts';
import { Outbox } from '@ally/messaging';
import { LOGGER } from '@ally/platform';
import { BILLING_CONFIG, type BillingConfig } from '../config.js';
import { PlansService } from '../plans/plans.service.js';
import { StripeClient } from '../stripe/stripe.client.js';
import { LIVE_STATUSES } from '../subscriptions/subscriptions.service.js';

type ThinNotification = { id: string; type: string; data?: Record<string, unknown>; fetchEvent(): Promise<unknown> };
type Handler = (em: EntityManager, event: Stripe.Event) => Promise<void>;

/**
 * Stripe's webhooks: the signature is checked by the SDK on the raw bytes,
 * each event id takes effect once (processed_webhooks, same transaction),
 * and an event older than the state we hold (Stripe's `created`) never rolls
 * it back. Types we do not handle are acknowledged and ignored.
 */
@Injectable()
export class StripeWebhookService {
  readonly outbox = new Outbox('billing', BillingEvents);
  private readonly handlers: Record<string, Handler> = {
    'checkout.session.completed': (em, e) => this.checkoutCompleted(em, e.data.object as Stripe.Checkout.Session),
    'customer.subscription.created': (em, e) => this.subscriptionChanged(em, e.data.object as Stripe.Subscription, e.created, e.id),
    'customer.subscription.updated': (em, e) => this.subscriptionChanged(em, e.data.object as Stripe.Subscription, e.created, e.id),
    'customer.subscription.deleted': (em, e) => this.subscriptionChanged(em, e.data.object as Stripe.Subscription, e.created, e.id),
    'invoice.paid': (em, e) => this.invoice(em, e.data.object as Stripe.Invoice, e.created),
    'invoice.finalized': (em, e) => this.invoice(em, e.data.object as Stripe.Invoice, e.created),
    'invoice.payment_failed': (em, e) => this.invoice(em, e.data.object as Stripe.Invoice, e.created, true),
    'customer.updated': async () => undefined,
    // Stripe validates meter events asynchronously and reports the ones it dropped (thin v2 event, or its v1 snapshot form).
    'v1.billing.meter.error_report_triggered': (em, e) => this.meterErrors(em, e),
    'billing.meter.error_report_triggered': (em, e) => this.meterErrors(em, e),
  };
  private readonly meterErrorReports: Counter;

  constructor(
    private readonly ds: DataSource,
    private readonly stripe: StripeClient,
    private readonly plans: PlansService,
    @Inject(BILLING_CONFIG) private readonly config: BillingConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    registry: Registry,
  ) {
    this.meterErrorReports = new Counter({
      name: 'ally_billing_meter_error_reports_total',
      help: 'Meter error reports from Stripe, by whether the affected ledger entries could be re-queued',
      labelNames: ['outcome'],
      registers: [registry],
    });
  }

  async receive(rawBase64: string, signature: string): Promise<{ received: true; duplicate: boolean }> {
    const secret = this.config.STRIPE_WEBHOOK_SECRET;
    if (!secret) throw new ProblemError(503, 'Stripe webhooks are not configured (STRIPE_WEBHOOK_SECRET)');
    let event: Stripe.Event;
    try {
      const raw = Buffer.from(rawBase64, 'base64');
      event = isThin(raw)
        ? await this.thinEvent(this.stripe.stripe.parseEventNotification(raw, signature, secret, this.config.STRIPE_WEBHOOK_TOLERANCE_SECONDS) as unknown as ThinNotification)
        : this.stripe.stripe.webhooks.constructEvent(raw, signature, secret, this.config.STRIPE_WEBHOOK_TOLERANCE_SECONDS);
    } catch (err) {
      if (err instanceof ProblemError) throw err;
      throw new ProblemError(400, `Invalid Stripe webhook: ${(err as Error).message.split('\n')[0]}`);
    }
    const current = await this.withCurrentObject(event);
    return this.ds.transaction(async (em) => {
      const fresh = await em.query(`INSERT INTO processed_webhooks (event_id, type) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING event_id`, [event.id, event.type]);
      if (fresh.length === 0) return { received: true as const, duplicate: true };
      const handler = this.handlers[event.type];
      if (handler) await handler(em, current);
      else this.logger.debug({ type: event.type }, 'stripe event ignored');
      return { received: true as const, duplicate: false };
    });
  }

  /**
   * Stripe does not promise the order of events, and two of the same second tie
   * on `created` (the version we keep): for a subscription or an invoice the
   * object is read from Stripe as it is now, so whichever event comes last,
   * what is stored is Stripe's current state. One Stripe no longer has (404)
   * is taken as the event says; any other failure is a 503, and Stripe retries.
   */
  private async withCurrentObject(event: Stripe.Event): Promise<Stripe.Event> {
    const object = (event.data as { object?: { id?: string; object?: string } } | undefined)?.object;
    if (!this.handlers[event.type] || !object?.id || (object.object !== 'subscription' && object.object !== 'invoice')) return event;
    try {
      const now: unknown = object.object === 'subscription' ? await this.stripe.stripe.subscriptions.retrieve(object.id) : await this.stripe.stripe.invoices.retrieve(object.id);
      return { ...event, data: { ...event.data, object: now } } as unknown as Stripe.Event;
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) return event;
      this.logger.warn({ err: String(err), eventId: event.id }, 'could not read the current object from Stripe');
      throw new ProblemError(503, 'Stripe could not be asked for the current state; the webhook will be retried');
    }
  }

  /**
   * A thin (v2) event notification from an event destination carries no
   * object; its data is fetched from Stripe (GET /v2/core/events/{id}). When
   * that fails the handler sees what the notification had (it then only
   * counts and logs).
   */
  private async thinEvent(notification: ThinNotification): Promise<Stripe.Event> {
    let data = notification.data as Record<string, unknown> | undefined;
    if (!data && this.handlers[notification.type]) {
      data = await notification.fetchEvent().then(
        (full) => (full as { data?: Record<string, unknown> }).data,
        (err) => {
          this.logger.warn({ err: String(err), eventId: notification.id }, 'could not fetch the thin event from Stripe');
          return undefined;
        },
      );
    }
    return { ...notification, data: data ?? {} } as unknown as Stripe.Event;
  }

  private async workspaceOf(em: EntityManager, customerId: string | null, metadata?: Stripe.Metadata | null): Promise<string | undefined> {
    if (metadata?.workspace) return metadata.workspace;
    if (!customerId) return undefined;
    const [row] = await em.query(`SELECT workspace FROM customers WHERE stripe_customer_id = $1`, [customerId]);
    return row?.workspace;
  }

  private async checkoutCompleted(em: EntityManager, session: Stripe.Checkout.Session): Promise<void> {
    const workspace = session.client_reference_id ?? session.metadata?.workspace;
    const customer = typeof session.customer === 'string' ? session.customer : session.customer?.id;
    if (!workspace || !customer) return;
    await em.query(`INSERT INTO customers (workspace, stripe_customer_id, created_by) VALUES ($1, $2, '00000000-0000-0000-0000-000000000000') ON CONFLICT DO NOTHING`, [workspace, customer]);
  }

  private async subscriptionChanged(em: EntityManager, sub: Stripe.Subscription, version: number, eventId: string): Promise<void> {
    const customer = typeof sub.customer === 'string' ? sub.customer : sub.customer.id;
    // A subscription we already hold keeps its row, also one pseudonymised by an erasure.
    const [known] = await em.query(`SELECT workspace FROM subscriptions WHERE stripe_subscription_id = $1`, [sub.id]);
    const workspace = known?.workspace ?? (await this.workspaceOf(em, customer, sub.metadata));
    if (!workspace) {
      this.logger.warn({ subscription: sub.id }, 'subscription for an unknown workspace ignored');
      return;
    }
    const item = sub.items?.data?.[0];
    const plan = this.plans.byPrice(item?.price?.id)?.id ?? sub.metadata?.plan ?? 'free';
    const periodEnd = (item as { current_period_end?: number } | undefined)?.current_period_end ?? (sub as { current_period_end?: number }).current_period_end;
    const result = await em.query(
      `INSERT INTO subscriptions (workspace, stripe_subscription_id, stripe_item_id, plan, status, seats, current_period_end, cancel_at_period_end, stripe_version, ended_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, to_timestamp($7), $8, $9, CASE WHEN $5 = 'canceled' THEN now() END, now())
       ON CONFLICT (workspace) DO UPDATE SET
         stripe_subscription_id = EXCLUDED.stripe_subscription_id, stripe_item_id = EXCLUDED.stripe_item_id, plan = EXCLUDED.plan,
         status = EXCLUDED.status, seats = EXCLUDED.seats, current_period_end = EXCLUDED.current_period_end,
         cancel_at_period_end = EXCLUDED.cancel_at_period_end, stripe_version = EXCLUDED.stripe_version,
         ended_at = EXCLUDED.ended_at, updated_at = now()
       WHERE subscriptions.stripe_version <= EXCLUDED.stripe_version
         -- Another subscription of the workspace takes the row only once the one it holds has ended.
         AND (subscriptions.stripe_subscription_id = EXCLUDED.stripe_subscription_id OR subscriptions.status <> ALL($10::text[]))
       RETURNING workspace`,
      [workspace, sub.id, item?.id ?? null, plan, sub.status, item?.quantity ?? 1, periodEnd ?? null, sub.cancel_at_period_end ?? false, version, LIVE_STATUSES],
    );
    if (result.length === 0) {
      this.logger.info({ subscription: sub.id, version }, 'an older subscription event, or one of a second subscription while the first runs; state kept');
      return;
    }
    await this.outbox.append(em, 'billing.subscription.changed', { workspace, plan, status: sub.status, seats: item?.quantity ?? 1, ownerEmail: null, locale: 'de' });
    // Checkout took the member count of its moment; members who joined since are billed from now on.
    // FOR SHARE: a member event committing right now (whose Stripe update may have caused this webhook) is waited for.
    const [count] = await em.query(`SELECT members FROM seat_counts WHERE workspace = $1 FOR SHARE`, [workspace]);
    if (count && item?.id && LIVE_STATUSES.includes(sub.status) && Math.max(1, count.members) !== (item.quantity ?? 1)) {
      await this.stripe.setSeats(sub.id, item.id, count.members, `seats:${sub.id}:${Math.max(1, count.members)}:${eventId}`);
    }
  }

  private async invoice(em: EntityManager, inv: Stripe.Invoice, version: number, failed = false): Promise<void> {
    const customer = typeof inv.customer === 'string' ? inv.customer : (inv.customer?.id ?? null);
    const workspace = await this.workspaceOf(em, customer, inv.metadata);
    if (!workspace || !inv.id) return;
    const tax = (inv as { tax?: number | null }).tax ?? Math.max(0, (inv.total ?? 0) - (inv.subtotal ?? 0));
    await em.query(
      `INSERT INTO invoices (stripe_invoice_id, workspace, number, status, currency, subtotal, tax, total, amount_paid, customer_ref, hosted_invoice_url, created_at, stripe_version)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, to_timestamp($12), $13)
       ON CONFLICT (stripe_invoice_id) DO UPDATE SET number = EXCLUDED.number, status = EXCLUDED.status, subtotal = EXCLUDED.subtotal,
         tax = EXCLUDED.tax, total = EXCLUDED.total, amount_paid = EXCLUDED.amount_paid, hosted_invoice_url = EXCLUDED.hosted_invoice_url,
         stripe_version = EXCLUDED.stripe_version
       WHERE invoices.stripe_version <= EXCLUDED.stripe_version AND NOT invoices.restricted`,
      [inv.id, workspace, inv.number ?? null, inv.status ?? 'open', inv.currency, inv.subtotal ?? 0, tax, inv.total ?? 0, inv.amount_paid ?? 0, customer ?? '', inv.hosted_invoice_url ?? null, inv.created, version],
    );
    if (failed) await this.outbox.append(em, 'billing.payment.failed', { workspace, invoiceId: inv.id, ownerEmail: null, locale: 'de' });
  }

  /**
   * Stripe refused meter events after accepting them (e.g. no such customer,
   * meter inactive). The sample errors name the events by our identifier,
   * i.e. the ledger's message id: those entries go back to pending so the
   * reporter sends them again once the cause is fixed. Errors we cannot tie to
   * entries are only counted and logged for an operator (reconciliation will
   * show the gap).
   */
  private async meterErrors(em: EntityManager, event: Stripe.Event): Promise<void> {
    const raw = event as unknown as { data?: Record<string, any>; related_object?: { id?: string } };
    const d = (raw.data?.object ?? raw.data ?? {}) as Record<string, any>;
    const errorTypes: { code?: string; error_count?: number; sample_errors?: { error_message?: string; request?: { identifier?: string } }[] }[] = d.reason?.error_types ?? [];
    const identifiers = [...new Set(errorTypes.flatMap((t) => (t.sample_errors ?? []).map((s) => s.request?.identifier)).filter((id): id is string => typeof id === 'string' && UUID.test(id)))];
    // TypeORM answers an UPDATE … RETURNING on Postgres with [rows, affected].
    const result = identifiers.length
      ? await em.query(
          `UPDATE ledger SET meter_status = 'pending', meter_next_at = now(), reported_at = NULL
            WHERE message_id = ANY($1::uuid[]) AND meter_status = 'reported' RETURNING message_id`,
          [identifiers],
        )
      : [];
    const requeued: { message_id: string }[] = Array.isArray(result[0]) ? result[0] : result;
    const info = {
      eventId: event.id,
      meter: d.meter ?? raw.related_object?.id,
      errorCount: d.reason?.error_count,
      codes: errorTypes.map((t) => t.code),
      summary: d.developer_message_summary,
      requeued: requeued.length,
    };
    this.meterErrorReports.inc({ outcome: requeued.length ? 'requeued' : 'unidentified' });
    this.logger.error(info, requeued.length ? 'Stripe dropped meter events; ledger entries re-queued' : 'Stripe dropped meter events that no ledger entry could be matched to');
  }
}

/** A thin event notification (Stripe event destinations, `object: 'v2.core.event'`) rather than a v1 snapshot event. */
function isThin(raw: Buffer): boolean {
  try {
    return (JSON.parse(raw.toString('utf8')) as { object?: string })?.object === 'v2.core.event';
  } catch {
    return false; // constructEvent reports the bad payload
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
