import { Inject, Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import type { Logger } from 'pino';
import { Counter, Registry } from 'prom-client';
import { z } from 'zod';
import { BillingEvents, ERASED_USER, parseInput, ProblemError, storableText } from '@ally/contracts';
import { Outbox } from '@ally/messaging';
import { lockSubjects } from '@ally/persistence';
import { LOGGER } from '@ally/platform';
import { IN_USE, isPseudonym } from '../common/erased-subjects.js';
import { isWorkspaceKey, privateOwnerOf } from '../common/workspace-key.js';
import { BILLING_CONFIG, type BillingConfig } from '../config.js';
import { PlansService } from '../plans/plans.service.js';
import { meterIdentifier, sendingOf } from '../ledger/meter-reporter.service.js';
import { StripeClient } from '../stripe/stripe.client.js';
import { ENDED_STATUSES, LIVE_STATUSES } from '../subscriptions/subscriptions.service.js';

type ThinNotification = { id: string; type: string; data?: Record<string, unknown>; fetchEvent(): Promise<unknown> };

/*
 * What a signed event must look like before anything of it is used. A signed
 * body that is not a Stripe event, or whose data.object is not what its type
 * needs, is a 400 naming the field; Postgres never sees a value it would refuse
 * (NUL characters, out-of-range numbers and times), so no such event is a 500.
 */
const stripeId = storableText(255).min(1, 'must not be empty');
/** Unix seconds that Postgres can hold as a timestamp. */
const unixTime = z.number().int().min(0).max(253_402_300_799);
const metadata = z.record(z.string(), storableText(500)).nullish();
/** An id, or the object expanded (also a deleted customer). */
const ref = z.union([stripeId, z.looseObject({ id: stripeId })]);
const refId = (r: z.infer<typeof ref> | null | undefined): string | undefined => (typeof r === 'string' ? r : r?.id);

const stripeEvent = z.looseObject({
  id: stripeId,
  type: storableText(255).min(1, 'must not be empty'),
  // Unix seconds on a v1 snapshot event, an ISO time on a thin (v2) notification; an event that changes state needs the former.
  created: z.union([unixTime, z.string()]).optional(),
  data: z.record(z.string(), z.unknown()).optional(),
});
type StripeEvent = z.infer<typeof stripeEvent>;

const deletedCustomer = z.looseObject({ id: stripeId, object: z.literal('customer').optional() });

const checkoutSession = z.looseObject({
  id: stripeId,
  object: z.literal('checkout.session').optional(),
  client_reference_id: storableText(200).nullish(),
  customer: ref.nullish(),
  metadata,
});

const subscription = z.looseObject({
  id: stripeId,
  object: z.literal('subscription').optional(),
  customer: ref,
  status: storableText(40).min(1, 'must not be empty'),
  metadata,
  cancel_at_period_end: z.boolean().nullish(),
  current_period_end: unixTime.nullish(),
  /** When it ended, as Stripe says (the contract's retention period runs from then). */
  ended_at: unixTime.nullish(),
  items: z
    .looseObject({
      data: z.array(
        z.looseObject({
          id: stripeId,
          quantity: z.number().int().min(0).max(2_147_483_647).nullish(),
          price: z.looseObject({ id: stripeId }).nullish(),
          current_period_end: unixTime.nullish(),
        }),
      ),
    })
    .nullish(),
});

const money = z.number().int().nullish();
const invoice = z.looseObject({
  id: stripeId,
  object: z.literal('invoice').optional(),
  customer: ref.nullish(),
  metadata,
  number: storableText(255).nullish(),
  status: storableText(40).nullish(),
  currency: z.string().regex(/^[a-z]{3}$/, 'must be a three-letter ISO currency code in lower case'),
  subtotal: money,
  /** Before 2025-03-31.basil only; since then the taxes are `total_taxes`, and `total_excluding_tax` the net. */
  tax: money,
  total_taxes: z
    .array(z.looseObject({ amount: z.number().int() }))
    .refine((taxes) => Number.isSafeInteger(taxes.reduce((n, t) => n + t.amount, 0)), 'must add up to an amount that can be stored')
    .nullish(),
  total_excluding_tax: money,
  total: money,
  amount_paid: money,
  hosted_invoice_url: storableText(2048).nullish(),
  created: unixTime,
  /** When it was finalised: the date the books count it by (`created` is its draft's). */
  status_transitions: z.looseObject({ finalized_at: unixTime.nullish() }).nullish(),
});

// Only counted and logged: lenient, but the lists the handler walks must be lists.
const meterReportFields = {
  meter: z.unknown().optional(),
  developer_message_summary: z.unknown().optional(),
  reason: z
    .looseObject({
      error_count: z.number().nullish(),
      error_types: z
        .array(
          z.looseObject({
            code: z.string().nullish(),
            error_count: z.number().nullish(),
            sample_errors: z.array(z.looseObject({ request: z.looseObject({ identifier: z.string().nullish() }).nullish() })).nullish(),
          }),
        )
        .nullish(),
    })
    .nullish(),
};
// The v1 snapshot form has the report in data.object, the thin (v2) form in data.
const meterReportEvent = stripeEvent.extend({ data: z.looseObject({ object: z.looseObject(meterReportFields).nullish(), ...meterReportFields }).optional() });

/** An event as it is handled: `object` is data.object (Stripe's current state where it is read), `gone` when Stripe no longer has it. */
interface Delivered<T = unknown> {
  event: StripeEvent;
  object: T;
  gone: boolean;
  /** When Stripe was asked for the object as it is now (ms): what it said then is at least as new as any earlier answer. */
  readAt?: number;
}
interface Handler {
  /** The whole event as this type needs it. */
  schema: z.ZodType<StripeEvent>;
  /** data.object's schema, also applied to the object as read from Stripe. */
  object?: z.ZodType;
  /** Reads the object as it is at Stripe now. */
  current?: (id: string) => Promise<unknown>;
  apply(em: EntityManager, delivered: Delivered): Promise<void>;
}

function on<S extends z.ZodType>(object: S, apply: (em: EntityManager, d: Delivered<z.infer<S>>) => Promise<void>, current?: (id: string) => Promise<unknown>): Handler {
  return { schema: stripeEvent.extend({ data: z.looseObject({ object }) }), object, current, apply: apply as Handler['apply'] };
}

/**
 * Stripe's webhooks: the signature is checked by the SDK on the raw bytes,
 * the event and its data.object are validated (a malformed one is a 400),
 * each event id takes effect once (processed_webhooks, same transaction),
 * and an event older than the state we hold (Stripe's `created`) never rolls
 * it back. Types we do not handle, and events about what billing does not
 * know (a subscription neither we nor Stripe have, a customer of no
 * workspace, a customer not the workspace's), are acknowledged, logged and
 * ignored: recorded as processed, never a 5xx that Stripe would retry for days.
 */
@Injectable()
export class StripeWebhookService {
  readonly outbox = new Outbox('billing', BillingEvents);
  /** A subscription's or an invoice's event, applied to the object as Stripe has it now (read again). */
  private readonly onSubscription: Handler = on(subscription, (em, d) => this.subscriptionChanged(em, d), (id) => this.stripe.stripe.subscriptions.retrieve(id));
  private readonly onInvoice = (paymentFailed = false): Handler => on(invoice, (em, d) => this.invoice(em, d, paymentFailed), (id) => this.stripe.stripe.invoices.retrieve(id));
  private readonly handlers: Record<string, Handler> = {
    'checkout.session.completed': on(checkoutSession, (em, d) => this.checkoutCompleted(em, d)),
    'customer.subscription.created': this.onSubscription,
    'customer.subscription.updated': this.onSubscription,
    'customer.subscription.deleted': this.onSubscription,
    'invoice.paid': this.onInvoice(),
    'invoice.finalized': this.onInvoice(),
    'invoice.payment_failed': this.onInvoice(true),
    // A voided or uncollectible invoice, or one otherwise changed, keeps the mirror (and the bookkeeping export) true.
    'invoice.voided': this.onInvoice(),
    'invoice.marked_uncollectible': this.onInvoice(),
    'invoice.updated': this.onInvoice(),
    // A draft deleted at Stripe (only drafts can be) leaves the mirror.
    'invoice.deleted': on(invoice, (em, d) => this.invoiceDeleted(em, d)),
    'customer.updated': { schema: stripeEvent, apply: async () => undefined },
    'customer.deleted': on(deletedCustomer, (em, d) => this.customerDeleted(em, d)),
    // Stripe validates meter events asynchronously and reports the ones it dropped (thin v2 event, or its v1 snapshot form).
    'v1.billing.meter.error_report_triggered': { schema: meterReportEvent, apply: (em, d) => this.meterErrors(em, d.event) },
    'billing.meter.error_report_triggered': { schema: meterReportEvent, apply: (em, d) => this.meterErrors(em, d.event) },
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
    let verified: unknown;
    try {
      const raw = Buffer.from(rawBase64, 'base64');
      verified = isThin(raw)
        ? await this.thinEvent(this.stripe.stripe.parseEventNotification(raw, signature, secret, this.config.STRIPE_WEBHOOK_TOLERANCE_SECONDS) as unknown as ThinNotification)
        : this.stripe.stripe.webhooks.constructEvent(raw, signature, secret, this.config.STRIPE_WEBHOOK_TOLERANCE_SECONDS);
    } catch (err) {
      if (err instanceof ProblemError) throw err;
      throw new ProblemError(400, `Invalid Stripe webhook: ${(err as Error).message.split('\n')[0]}`);
    }
    // Signed, but not necessarily a Stripe event: the envelope first, then what the type needs.
    const envelope = parseInput(stripeEvent, verified, 'Stripe event');
    const handler = this.handlers[envelope.type];
    const delivered = handler ? await this.withCurrentObject(parseInput(handler.schema, verified, 'Stripe event'), handler) : undefined;
    return this.ds.transaction(async (em) => {
      const fresh = await em.query(`INSERT INTO processed_webhooks (event_id, type) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING event_id`, [envelope.id, envelope.type]);
      if (fresh.length === 0) return { received: true as const, duplicate: true };
      if (handler && delivered) {
        await this.holdOffErasure(em, delivered);
        await handler.apply(em, delivered);
      }
      else this.logger.debug({ type: envelope.type }, 'stripe event ignored');
      return { received: true as const, duplicate: false };
    });
  }

  /**
   * Stripe does not promise the order of events, and two of the same second tie
   * on `created` (the version we keep): for a subscription or an invoice the
   * object is read from Stripe as it is now, so whichever event comes last,
   * what is stored is Stripe's current state. One Stripe no longer has (404)
   * is taken as the event says (`gone`); any other failure is a 503, and Stripe retries.
   */
  private async withCurrentObject(event: StripeEvent, handler: Handler): Promise<Delivered> {
    const object = event.data?.object;
    if (!handler.current || !handler.object) return { event, object, gone: false };
    let now: unknown;
    const readAt = Date.now();
    try {
      now = await handler.current((object as { id: string }).id);
    } catch (err) {
      // The event's copy, as old as the event: it must not outrank a state read from Stripe since.
      if ((err as { statusCode?: number }).statusCode === 404) return { event, object, gone: true };
      throw this.stripeAway(err, { eventId: event.id }, 'could not read the current object from Stripe');
    }
    const current = handler.object.safeParse(now);
    if (current.success) return { event, object: current.data, gone: false, readAt };
    this.logger.warn({ eventId: event.id, issues: current.error.issues.slice(0, 5) }, "Stripe's current object is not of the expected shape; the event's copy is used");
    return { event, object, gone: false };
  }

  /** Stripe could not be asked what a webhook needs to know: logged, and a 503, so that Stripe delivers the event again. */
  private stripeAway(err: unknown, log: Record<string, unknown>, message: string): ProblemError {
    this.logger.warn({ err: String(err), ...log }, message);
    return new ProblemError(503, 'Stripe could not be asked for the current state; the webhook will be retried');
  }

  /**
   * A thin (v2) event notification from an event destination carries no
   * object; its data is fetched from Stripe (GET /v2/core/events/{id}). When
   * Stripe is away for that, the delivery is answered 503 and nothing is
   * recorded: Stripe delivers it again (taken as handled, the identifiers it
   * names were lost for good).
   */
  private async thinEvent(notification: ThinNotification): Promise<unknown> {
    let data = notification.data as Record<string, unknown> | undefined;
    if (!data && this.handlers[notification.type]) {
      data = await notification.fetchEvent().then(
        (full) => (full as { data?: Record<string, unknown> }).data,
        (err) => {
          this.logger.warn({ err: String(err), eventId: notification.id }, 'could not fetch the thin event from Stripe; it is delivered again');
          throw new ProblemError(503, 'The event’s data could not be fetched from Stripe; deliver it again', { retryAfter: 60 });
        },
      );
    }
    return { ...notification, data: data ?? {} };
  }

  /**
   * An event about a private workspace waits for an erasure of its owner under way, which takes their lock
   * exclusively: the erasure renames the workspace's rows, and would miss one this event wrote meanwhile (an invoice
   * kept ten years under the person's id, a subscription no later event could end). What it reads next is as the
   * erasure left it.
   */
  private async holdOffErasure(em: EntityManager, { object }: Delivered): Promise<void> {
    const o = (object ?? {}) as { customer?: z.infer<typeof ref> | null; metadata?: Record<string, string> | null };
    const customer = refId(o.customer);
    const [row] = customer ? await em.query(`SELECT workspace FROM customers WHERE stripe_customer_id = $1`, [customer]) : [];
    const owners = [row?.workspace, o.metadata?.workspace].map(privateOwnerOf).filter((u): u is string => u !== undefined);
    if (owners.length) await lockSubjects(em, [...new Set(owners)].sort(), 'shared');
  }

  /**
   * The customer is what ties a Stripe object to a workspace (Checkout creates
   * it for the workspace, and an erasure renames both together): the workspace
   * an object claims, by the row holding it or by its metadata, must be its
   * customer's. Otherwise the event is about something billing does not know.
   */
  private async workspaceOf(em: EntityManager, log: Record<string, unknown>, customer: string | undefined, claimed: string | undefined): Promise<string | undefined> {
    const [row] = customer ? await em.query(`SELECT workspace FROM customers WHERE stripe_customer_id = $1`, [customer]) : [];
    if (!row) {
      this.logger.warn({ ...log, customer }, 'stripe event for a customer of no workspace ignored');
      return undefined;
    }
    if (claimed && claimed !== row.workspace) {
      this.logger.warn({ ...log, customer, workspace: claimed, customerWorkspace: row.workspace }, "stripe event whose customer is not its workspace's ignored");
      return undefined;
    }
    return row.workspace;
  }

  /**
   * What orders the states we keep (ms): when Stripe was asked for the object as it is now, so of two events of
   * the same second handled at once by two replicas the later answer wins whichever commits last; else the
   * event's own time. An event that would change state without its time is not a Stripe event.
   */
  private version({ event, readAt }: Delivered): number {
    if (typeof event.created === 'number') return readAt ?? event.created * 1000;
    throw new ProblemError(400, `Invalid Stripe event: created (a ${event.type} event needs its time in Unix seconds)`, {
      errors: [{ field: 'created', message: 'is required, in Unix seconds' }],
    });
  }

  private async checkoutCompleted(em: EntityManager, { event, object: session }: Delivered<z.infer<typeof checkoutSession>>): Promise<void> {
    const log = { eventId: event.id, type: event.type, session: session.id };
    // The workspace as billing named it when it opened the session (its metadata, which only the API sets): a
    // client_reference_id alone may come from a Payment Link's URL, where anyone can write any organisation's id.
    const workspace = session.metadata?.workspace;
    const customer = refId(session.customer);
    if (!workspace || !isWorkspaceKey(workspace) || !customer || (session.client_reference_id && session.client_reference_id !== workspace)) {
      this.logger.warn({ ...log, customer }, 'checkout session without a workspace or a customer ignored');
      return;
    }
    const inserted = await em.query(
      `INSERT INTO customers (workspace, stripe_customer_id, created_by) VALUES ($1, $2, '${ERASED_USER}') ON CONFLICT DO NOTHING RETURNING workspace`,
      [workspace, customer],
    );
    if (inserted.length) return;
    const held: { workspace: string; stripe_customer_id: string }[] = await em.query(`SELECT workspace, stripe_customer_id FROM customers WHERE workspace = $1 OR stripe_customer_id = $2`, [workspace, customer]);
    if (held.some((r) => r.workspace !== workspace || r.stripe_customer_id !== customer)) {
      this.logger.warn({ ...log, workspace, customer, held }, "checkout session whose customer is not its workspace's ignored");
    }
  }

  private async subscriptionChanged(em: EntityManager, delivered: Delivered<z.infer<typeof subscription>>): Promise<void> {
    const { event, object: sub, gone } = delivered;
    const log = { eventId: event.id, type: event.type, subscription: sub.id };
    // Stripe no longer has it: whatever its last copy said, it runs no more (held live, its row would never end).
    const status = gone && !ENDED_STATUSES.includes(sub.status) ? 'canceled' : sub.status;
    // A subscription we already hold keeps its row, also one pseudonymised by an erasure.
    const [known] = await em.query(`SELECT workspace FROM subscriptions WHERE stripe_subscription_id = $1`, [sub.id]);
    if (!known && gone) {
      this.logger.warn(log, 'stripe event for a subscription neither billing nor Stripe has ignored');
      return;
    }
    const workspace = await this.workspaceOf(em, log, refId(sub.customer), known?.workspace ?? (sub.metadata?.workspace || undefined));
    if (!workspace) return;
    const version = this.version(delivered);
    // The seat item is the one priced as a plan (a subscription may carry others: an add-on, metered usage).
    const items = sub.items?.data ?? [];
    const item = items.find((i) => this.plans.byPrice(i.price?.id)) ?? items[0];
    const plan = this.plans.byPrice(item?.price?.id)?.id ?? sub.metadata?.plan ?? 'free';
    const periodEnd = item?.current_period_end ?? sub.current_period_end;
    const seats = item?.quantity ?? 1;
    const cancelAtPeriodEnd = sub.cancel_at_period_end ?? false;
    // A pseudonym holds each subscription of its subject's erasures (several after repeated ones): there a row is found by Stripe's id.
    const erased = isPseudonym(workspace);
    // What the owner was last told about: a renewal (a new period, nothing else) is no news worth a mail.
    const [before]: { plan: string; status: string; seats: number; cancel_at_period_end: boolean }[] = await em.query(
      `SELECT plan, status, seats, cancel_at_period_end FROM subscriptions WHERE workspace = $1 AND (NOT $2 OR stripe_subscription_id = $3) FOR UPDATE`,
      [workspace, erased, sub.id],
    );
    const result = await em.query(
      `INSERT INTO subscriptions (workspace, stripe_subscription_id, stripe_item_id, plan, status, seats, current_period_end, cancel_at_period_end, stripe_version, ended_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, to_timestamp($7), $8, $9, CASE WHEN $5 = ANY($11::text[]) THEN least(coalesce(to_timestamp($12), now()), now()) END, now())
       ON CONFLICT ${erased ? '(stripe_subscription_id)' : `(workspace) WHERE ${IN_USE}`} DO UPDATE SET
         stripe_subscription_id = EXCLUDED.stripe_subscription_id, stripe_item_id = EXCLUDED.stripe_item_id, plan = EXCLUDED.plan,
         status = EXCLUDED.status, seats = EXCLUDED.seats, current_period_end = EXCLUDED.current_period_end,
         cancel_at_period_end = EXCLUDED.cancel_at_period_end, stripe_version = EXCLUDED.stripe_version,
         -- The moment it ended stays what it was: a later event about the ended subscription does not restart its period.
         ended_at = CASE WHEN subscriptions.stripe_subscription_id = EXCLUDED.stripe_subscription_id AND EXCLUDED.ended_at IS NOT NULL
                         THEN coalesce(subscriptions.ended_at, EXCLUDED.ended_at) ELSE EXCLUDED.ended_at END,
         updated_at = now()
       WHERE CASE WHEN subscriptions.stripe_subscription_id = EXCLUDED.stripe_subscription_id THEN subscriptions.stripe_version <= EXCLUDED.stripe_version
         -- Another subscription of the workspace takes the row only once the one it holds has ended; a live one then
         -- whatever the versions (they are read times of two objects: another replica may have read the old one's end later).
         ELSE subscriptions.status <> ALL($10::text[]) AND (EXCLUDED.status = ANY($10::text[]) OR subscriptions.stripe_version <= EXCLUDED.stripe_version) END
       RETURNING workspace`,
      [workspace, sub.id, item?.id ?? null, plan, status, seats, periodEnd ?? null, cancelAtPeriodEnd, version, LIVE_STATUSES, ENDED_STATUSES, sub.ended_at ?? null],
    );
    if (result.length === 0) {
      if (!erased && LIVE_STATUSES.includes(status) && (await this.endedAtStripe(em, workspace, sub.id))) return this.subscriptionChanged(em, delivered);
      this.logger.info({ subscription: sub.id, version }, 'an older subscription event, or one of a second subscription while the first runs; state kept');
      return;
    }
    const news = !before || before.plan !== plan || before.status !== status || before.seats !== seats || before.cancel_at_period_end !== cancelAtPeriodEnd;
    // An erased subject's workspace (its customer deleted at Stripe by the erasure) has nobody left to tell.
    if (news && !erased) {
      await this.subscriptionNews(em, workspace, { plan, status, seats, cancelAtPeriodEnd, currentPeriodEnd: periodEnd ? new Date(periodEnd * 1000).toISOString() : null });
    }
    // Checkout took the member count of its moment; members who joined since are billed from now on.
    // FOR SHARE: a member event committing right now (whose Stripe update may have caused this webhook) is waited for.
    const [count] = await em.query(`SELECT members FROM seat_counts WHERE workspace = $1 FOR SHARE`, [workspace]);
    if (count && item?.id && LIVE_STATUSES.includes(status) && Math.max(1, count.members) !== seats) {
      // Refused (ended there meanwhile), the subscription's state is still recorded, not rolled back at every retry of Stripe's.
      await this.stripe.setSeats(workspace, sub.id, item.id, count.members, `seats:${sub.id}:${Math.max(1, count.members)}:${event.id}`);
    }
  }

  /**
   * Stripe does not order its events: a re-subscription's `created` may come
   * before the `deleted` of the subscription it replaces, whose row still
   * reads live. Asked of Stripe, a holder that has ended there is marked
   * ended (its own late event then changes nothing), and the new one may take
   * the row; true when it was. Two subscriptions live at Stripe keep the first.
   */
  private async endedAtStripe(em: EntityManager, workspace: string, newcomer: string): Promise<boolean> {
    const [holder]: { stripe_subscription_id: string; status: string }[] = await em.query(
      `SELECT stripe_subscription_id, status FROM subscriptions WHERE workspace = $1 AND ${IN_USE} FOR UPDATE`,
      [workspace],
    );
    if (!holder || holder.stripe_subscription_id === newcomer || !LIVE_STATUSES.includes(holder.status)) return false;
    // One Stripe no longer has (404) has ended there too; Stripe away is a 503, and Stripe delivers the event again.
    const current = await this.stripe.stripe.subscriptions.retrieve(holder.stripe_subscription_id).catch((err: { statusCode?: number }) => {
      if (err.statusCode === 404) return { status: 'canceled' as const };
      throw this.stripeAway(err, { subscription: holder.stripe_subscription_id }, 'could not ask Stripe whether a subscription ended');
    });
    if (LIVE_STATUSES.includes(current.status)) return false;
    await em.query(`UPDATE subscriptions SET status = $3, ended_at = coalesce(ended_at, now()), updated_at = now() WHERE workspace = $1 AND stripe_subscription_id = $2`, [
      workspace,
      holder.stripe_subscription_id,
      current.status,
    ]);
    return true;
  }

  /**
   * A customer deleted at Stripe, not by us (in the Dashboard, say): its workspace gets a new one at its next
   * Checkout, where Stripe would refuse the dead one for good. Rows kept under an erased subject's pseudonym stay
   * (an erasure's own deletion of the customer sends this too).
   */
  private async customerDeleted(em: EntityManager, { object: customer }: Delivered<z.infer<typeof deletedCustomer>>): Promise<void> {
    const [[row]]: [{ workspace: string }[], number] = await em.query(`DELETE FROM customers WHERE stripe_customer_id = $1 AND ${IN_USE} RETURNING workspace`, [customer.id]);
    if (!row) return;
    // Stripe ends a deleted customer's subscriptions with it. Its events of that promise no order and may come after
    // this one, when no customer ties them to the workspace any more: the plan ends here, or it would run on for good.
    const [ended]: [{ plan: string; seats: number }[], number] = await em.query(
      `UPDATE subscriptions SET status = 'canceled', ended_at = coalesce(ended_at, now()), updated_at = now() WHERE workspace = $1 AND status = ANY($2) RETURNING plan, seats`,
      [row.workspace, LIVE_STATUSES],
    );
    for (const sub of ended) await this.subscriptionNews(em, row.workspace, { plan: sub.plan, status: 'canceled', seats: sub.seats, cancelAtPeriodEnd: false, currentPeriodEnd: null });
  }

  /** A workspace's subscription changed: the event notify mails its owners from (it finds them: no address here). */
  private subscriptionNews(em: EntityManager, workspace: string, s: { plan: string; status: string; seats: number; cancelAtPeriodEnd: boolean; currentPeriodEnd: string | null }) {
    return this.outbox.append(em, 'billing.subscription.changed', { workspace, ...s, ownerEmail: null, locale: 'de' });
  }

  private async invoiceDeleted(em: EntityManager, { object: inv }: Delivered<z.infer<typeof invoice>>): Promise<void> {
    await em.query(`DELETE FROM invoices WHERE stripe_invoice_id = $1 AND status = 'draft'`, [inv.id]);
  }

  private async invoice(em: EntityManager, delivered: Delivered<z.infer<typeof invoice>>, failed = false): Promise<void> {
    const { event, object: inv, gone } = delivered;
    const log = { eventId: event.id, type: event.type, invoice: inv.id };
    // A draft Stripe no longer has was deleted there: a late event of it does not bring it back.
    if (gone && inv.status === 'draft') {
      await this.invoiceDeleted(em, delivered);
      return;
    }
    const customer = refId(inv.customer);
    const workspace = await this.workspaceOf(em, log, customer, inv.metadata?.workspace || undefined);
    if (!workspace || !customer) return;
    const version = this.version(delivered);
    const total = inv.total ?? 0;
    // Negative on a credit (a proration back): net + tax = total always holds, as the books need it.
    const tax = inv.total_taxes ? inv.total_taxes.reduce((n, t) => n + t.amount, 0) : (inv.tax ?? 0);
    const net = inv.total_excluding_tax ?? total - tax;
    // A workspace an erasure renamed: the invoice is kept for the books as its others are, restricted, naming nobody;
    // one restricted before still follows Stripe (paid, voided), since the books are what it is kept for.
    const erased = isPseudonym(workspace);
    await em.query(
      `INSERT INTO invoices (stripe_invoice_id, workspace, number, status, currency, subtotal, net, tax, total, amount_paid, customer_ref, hosted_invoice_url, created_at, stripe_version, restricted, finalized_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, to_timestamp($13), $14, $15, to_timestamp($16))
       ON CONFLICT (stripe_invoice_id) DO UPDATE SET number = EXCLUDED.number, status = EXCLUDED.status, subtotal = EXCLUDED.subtotal,
         finalized_at = coalesce(EXCLUDED.finalized_at, invoices.finalized_at),
         net = EXCLUDED.net, tax = EXCLUDED.tax, total = EXCLUDED.total, amount_paid = EXCLUDED.amount_paid,
         hosted_invoice_url = CASE WHEN invoices.restricted THEN NULL ELSE EXCLUDED.hosted_invoice_url END, stripe_version = EXCLUDED.stripe_version
       WHERE invoices.stripe_version <= EXCLUDED.stripe_version`,
      [inv.id, workspace, inv.number ?? null, inv.status ?? 'open', inv.currency, inv.subtotal ?? 0, net, tax, total, inv.amount_paid ?? 0, erased ? workspace : customer, erased ? null : (inv.hosted_invoice_url ?? null), inv.created, version, erased, inv.status_transitions?.finalized_at ?? null],
    );
    // The invoice as Stripe has it now: a failure reported after a retry paid it (a webhook delivered late) tells nobody.
    const settled = inv.status === 'paid' || inv.status === 'void';
    if (failed && !erased && !settled) await this.outbox.append(em, 'billing.payment.failed', { workspace, invoiceId: inv.id, ownerEmail: null, locale: 'de' });
  }

  /**
   * Stripe refused meter events after accepting them (e.g. no such customer,
   * meter inactive). The sample errors name the events by our identifier
   * (the ledger's message id, `.rN` on a re-send): those entries go back to
   * pending, sent again an hour later under a new identifier, and are given up
   * as refused when dropped DROPS_BEFORE_GIVING_UP times. Errors we cannot tie to
   * entries are only counted and logged for an operator (reconciliation will
   * show the gap).
   */
  private async meterErrors(em: EntityManager, event: StripeEvent): Promise<void> {
    const raw = event as unknown as { data?: Record<string, any>; related_object?: { id?: string } };
    const d = (raw.data?.object ?? raw.data ?? {}) as Record<string, any>;
    const errorTypes: { code?: string | null; sample_errors?: { request?: { identifier?: string | null } | null }[] | null }[] = d.reason?.error_types ?? [];
    // Which sending each names: a report about an earlier one (a late report, a second destination) must not send
    // again an entry whose later sending Stripe counted.
    const sendings = [
      ...new Map(
        errorTypes
          .flatMap((t) => (t.sample_errors ?? []).map((s) => s.request?.identifier))
          .map((id) => (typeof id === 'string' ? sendingOf(id) : undefined))
          .filter((s): s is { messageId: string; resends: number } => s !== undefined)
          .map((s) => [meterIdentifier(s.messageId, s.resends), s]),
      ).values(),
    ];
    // Sent again under a new identifier (Stripe took the old one as counted), after a while for the cause to be
    // mended; dropped that often, the entry is given up as refused, which reconciliation counts and shows.
    // TypeORM answers an UPDATE … RETURNING on Postgres with [rows, affected].
    const result = sendings.length
      ? await em.query(
          `UPDATE ledger l SET meter_resends = l.meter_resends + 1, reported_at = NULL,
                  meter_status = CASE WHEN l.meter_resends + 1 >= $3 THEN 'refused' ELSE 'pending' END,
                  meter_error = CASE WHEN l.meter_resends + 1 >= $3 THEN 'Stripe dropped it after accepting it, ' || $3 || ' times' ELSE l.meter_error END,
                  meter_next_at = now() + make_interval(secs => $4)
             FROM unnest($1::uuid[], $2::int[]) AS dropped(message_id, resends)
            WHERE l.message_id = dropped.message_id AND l.meter_resends = dropped.resends AND l.meter_status = 'reported'
           RETURNING l.message_id`,
          [sendings.map((s) => s.messageId), sendings.map((s) => s.resends), DROPS_BEFORE_GIVING_UP, RESEND_AFTER_DROP_SECONDS],
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

/** Times Stripe may drop an entry after accepting it before it is given up (each re-send waits RESEND_AFTER_DROP_SECONDS). */
const DROPS_BEFORE_GIVING_UP = 3;
const RESEND_AFTER_DROP_SECONDS = 3600;
