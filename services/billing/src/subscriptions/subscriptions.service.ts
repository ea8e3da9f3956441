import { Inject, Injectable } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { DataSource } from 'typeorm';
import { ProblemError, type Actor, type SubscriptionView } from '@ally/contracts';
import { IN_USE } from '../common/erased-subjects.js';
import { WorkspaceAccess } from '../common/workspace-access.service.js';
import { BILLING_CONFIG, type BillingConfig } from '../config.js';
import { PlansService } from '../plans/plans.service.js';
import { StripeClient } from '../stripe/stripe.client.js';
import { lockNamed } from '@ally/persistence';

export interface SubscriptionRow {
  workspace: string;
  stripe_subscription_id: string;
  stripe_item_id: string | null;
  plan: string;
  status: string;
  seats: number;
  current_period_end: Date | null;
  cancel_at_period_end: boolean;
}

/** Statuses in which a plan's quota applies; otherwise the workspace falls back to Free. */
export const LIVE_STATUSES = ['active', 'trialing', 'past_due'];
/** Statuses a subscription never leaves: over (cancelled, or never paid for), so its contract data's period runs. */
export const ENDED_STATUSES = ['canceled', 'incomplete_expired'];

/** Checkout to subscribe, the Customer Portal to change or cancel; Ally never sees card or bank data. */
@Injectable()
export class SubscriptionsService {
  constructor(
    private readonly ds: DataSource,
    private readonly access: WorkspaceAccess,
    private readonly plans: PlansService,
    private readonly stripe: StripeClient,
    @Inject(BILLING_CONFIG) private readonly config: BillingConfig,
  ) {}

  async checkout(actor: Actor, workspace: string, planId: string): Promise<{ url: string }> {
    const key = await this.access.manage(actor, workspace);
    const plan = this.plans.get(planId);
    if (!plan.selfService || !plan.stripePriceId) throw new ProblemError(400, `The plan "${planId}" cannot be bought through Checkout`, { errors: [{ field: 'plan', message: 'is not sold through Checkout' }] });
    const current = await this.find(key);
    if (current && LIVE_STATUSES.includes(current.status)) throw new ProblemError(409, 'This workspace already has a subscription; change it in the Customer Portal');
    const customer = await this.customer(key, actor);
    // Read before the transaction: inside it, a second connection from the pool its own holds (ten at once starved it).
    const seats = workspace === 'private' ? 1 : await this.members(key);
    // Checkouts of one workspace take turns (two at once left two open sessions: both payable, one subscription shown).
    return this.ds.transaction(async (em) => {
      // Waited for a while (within the caller's RPC timeout), not without end: callers lining up here each hold a database connection.
      await em.query(`SET LOCAL lock_timeout = '5s'`);
      await lockNamed(em, `checkout:${key}`).catch((err: { code?: string }) => {
        if (err?.code === '55P03') throw new ProblemError(409, 'Another checkout of this workspace is under way; try again in a moment');
        throw err;
      });
      await em.query(`SET LOCAL lock_timeout = 0`);
      return this.openCheckout(key, plan, customer, seats);
    });
  }

  /**
   * One subscription per workspace: none may be running at Stripe (our row can lag behind
   * its webhook), and one Checkout at a time: the same plan reopens it, another replaces it.
   */
  private async openCheckout(key: string, plan: ReturnType<PlansService['get']>, customer: string, seats: number): Promise<{ url: string }> {
    const running = await this.stripe.stripe.subscriptions.list({ customer, status: 'all', limit: 100 });
    if (running.data.some((sub) => !ENDED_STATUSES.includes(sub.status))) {
      throw new ProblemError(409, 'This workspace already has a subscription; change it in the Customer Portal');
    }
    const open = await this.stripe.stripe.checkout.sessions.list({ customer, status: 'open', limit: 100 });
    for (const session of open.data) {
      if (session.metadata?.plan === plan.id && session.url) return { url: session.url };
      await this.stripe.stripe.checkout.sessions.expire(session.id);
    }
    // Which sessions it replaced is part of the key: back to a plan within the minute is a new session, not Stripe's
    // replay of the one just expired (a retry of this very call still gets the same one).
    const replaced = createHash('sha256').update(open.data.map((o) => o.id).join(',')).digest('hex').slice(0, 16);
    const session = await this.stripe.stripe.checkout.sessions.create(
      {
        mode: 'subscription',
        customer,
        client_reference_id: key,
        line_items: [{ price: plan.stripePriceId!, quantity: seats }],
        // What an invoice must name (§ 14(4) UStG): the buyer's name and address, and a business's VAT ID (reverse
        // charge across the EU); saved on the customer, so its invoices carry them.
        billing_address_collection: 'required',
        tax_id_collection: { enabled: true },
        customer_update: { name: 'auto', address: 'auto' },
        automatic_tax: { enabled: this.config.STRIPE_AUTOMATIC_TAX },
        subscription_data: { metadata: { workspace: key, plan: plan.id } },
        metadata: { workspace: key, plan: plan.id },
        success_url: `${this.config.PUBLIC_BASE_URL}/billing/success?session_id={CHECKOUT_SESSION_ID}`,
        cancel_url: `${this.config.PUBLIC_BASE_URL}/billing/cancelled`,
      },
      { idempotencyKey: `checkout:${key}:${customer}:${plan.id}:${Math.floor(Date.now() / 60_000)}:${replaced}` },
    );
    return { url: session.url! };
  }

  async portal(actor: Actor, workspace: string): Promise<{ url: string }> {
    const key = await this.access.manage(actor, workspace);
    const [row] = await this.ds.query(`SELECT stripe_customer_id FROM customers WHERE workspace = $1`, [key]);
    if (!row) throw new ProblemError(404, 'This workspace has no billing account yet; subscribe first');
    const session = await this.stripe.stripe.billingPortal.sessions.create({ customer: row.stripe_customer_id, return_url: `${this.config.PUBLIC_BASE_URL}/billing` });
    return { url: session.url };
  }

  async view(actor: Actor, workspace: string): Promise<SubscriptionView> {
    const key = await this.access.read(actor, workspace);
    const row = await this.find(key);
    if (!row || !LIVE_STATUSES.includes(row.status)) {
      return { workspace, plan: 'free', status: row?.status ?? 'none', currentPeriodEnd: null, seats: workspace === 'private' ? 1 : await this.members(key), cancelAtPeriodEnd: false };
    }
    return { workspace, plan: row.plan, status: row.status, currentPeriodEnd: row.current_period_end?.toISOString() ?? null, seats: row.seats, cancelAtPeriodEnd: row.cancel_at_period_end };
  }

  async find(key: string): Promise<SubscriptionRow | undefined> {
    const [row] = await this.ds.query(`SELECT * FROM subscriptions WHERE workspace = $1`, [key]);
    return row;
  }

  async members(key: string): Promise<number> {
    const [row] = await this.ds.query(`SELECT members FROM seat_counts WHERE workspace = $1`, [key]);
    return Math.max(1, row?.members ?? 1);
  }

  /** The workspace's Stripe customer, created once (concurrent callers share it). */
  private async customer(key: string, actor: Actor): Promise<string> {
    const [row] = await this.ds.query(`SELECT stripe_customer_id FROM customers WHERE workspace = $1`, [key]);
    if (row) return row.stripe_customer_id;
    let created = await this.stripe.stripe.customers.create({ metadata: { workspace: key } }, { idempotencyKey: `customer:${key}` });
    // Stripe replays, for a day, the customer an erasure of this workspace had deleted (its row now under the pseudonym),
    // or one deleted at Stripe since (its row gone with the webhook): a new one, under a key named after the one
    // replayed, the same for callers at the same moment (a random key made one customer each, one left unknown),
    // and after that one too, should it have gone the same way within the day.
    const gone = async (id: string) =>
      (await this.ds.query(`SELECT 1 FROM customers WHERE stripe_customer_id = $1 AND workspace <> $2`, [id, key])).length > 0 ||
      ((await this.stripe.stripe.customers.retrieve(id)) as { deleted?: boolean }).deleted === true;
    for (let tries = 0; await gone(created.id); tries++) {
      if (tries === 5) throw new ProblemError(503, 'Stripe keeps answering with a customer that is gone; try again later', { retryAfter: 60 });
      created = await this.stripe.stripe.customers.create({ metadata: { workspace: key } }, { idempotencyKey: `customer:${key}:after:${created.id}` });
    }
    // Stripe took its time: an erasure of the actor may have read the customers meanwhile, and would miss this row.
    return this.ds
      .transaction(async (em) => {
        await this.access.holdAgainstErasure(em, actor);
        await em.query(`INSERT INTO customers (workspace, stripe_customer_id, created_by) VALUES ($1, $2, $3) ON CONFLICT (workspace) WHERE ${IN_USE} DO NOTHING`, [key, created.id, actor.userId]);
        const [row] = await em.query(`SELECT stripe_customer_id FROM customers WHERE workspace = $1`, [key]);
        return row.stripe_customer_id as string;
      })
      .catch(async (err) => {
        // Erased meanwhile: a private workspace's customer names them in its metadata, so it goes at Stripe too.
        if (err instanceof ProblemError && err.status === 410 && key.startsWith('private:')) await this.stripe.stripe.customers.del(created.id);
        throw err;
      });
  }
}
