import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { DataSource } from 'typeorm';
import type { Logger } from 'pino';
import { Counter, Gauge, Registry } from 'prom-client';
import { BillingEvents } from '@ally/contracts';
import { Outbox } from '@ally/messaging';
import { LOGGER } from '@ally/platform';
import { currentPeriod } from '../common/workspace-key.js';
import { BILLING_CONFIG, type BillingConfig } from '../config.js';
import { StripeClient } from '../stripe/stripe.client.js';

const CHECK_EVERY_MS = 3600_000;
/** The first look after start: Stripe and the ledger's reporter are up by then. */
const FIRST_CHECK_MS = 60_000;

/**
 * Claims the periodic job `name` for this replica if no replica started it
 * within `periodMs`: one statement, so of replicas asking at once one wins
 * (the others wait for its row and then find it recent).
 */
export async function claimDue(ds: DataSource, name: string, periodMs: number): Promise<boolean> {
  const rows = await ds.query(
    `INSERT INTO scheduled_jobs (name, last_started_at) VALUES ($1, now())
     ON CONFLICT (name) DO UPDATE SET last_started_at = now() WHERE scheduled_jobs.last_started_at <= now() - $2 * interval '1 millisecond'
     RETURNING 1`,
    [name, periodMs],
  );
  return rows.length > 0;
}

export interface Discrepancy {
  workspace: string;
  period: string;
  ledgerTokens: number;
  stripeTokens: number;
}

export interface ReconciliationResult {
  period: string;
  workspaces: number;
  discrepancies: Discrepancy[];
  /** Workspaces not compared: Stripe has no such customer (of its test mode, say, or removed there for good). */
  unchecked: string[];
}

/**
 * Compares, per workspace with a Stripe customer and month, the tokens our
 * ledger marked reported with what Stripe's meter aggregated (event
 * summaries over the same window; a meter event's timestamp is its ledger
 * row's created_at). A difference raises `billing.meter.discrepancy-found`
 * and the discrepancy metrics; it changes no data (an operator decides).
 * Runs daily (RECONCILE_INTERVAL_MS) on one replica, and as the `reconcile [YYYY-MM]` command.
 */
@Injectable()
export class ReconciliationService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly outbox = new Outbox('billing', BillingEvents);
  private readonly found: Counter;
  private readonly open: Gauge;
  private readonly runs: Counter;
  private timers: NodeJS.Timeout[] = [];
  private meterId?: string;

  constructor(
    private readonly ds: DataSource,
    private readonly stripe: StripeClient,
    @Inject(BILLING_CONFIG) private readonly config: BillingConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    registry: Registry,
  ) {
    this.found = new Counter({ name: 'ally_billing_meter_discrepancies_total', help: 'Workspace-months whose ledger and Stripe meter totals differed at a reconciliation', registers: [registry] });
    this.open = new Gauge({ name: 'ally_billing_meter_discrepancy_workspaces', help: 'Workspaces whose totals differed at the last reconciliation of a period', labelNames: ['period'], registers: [registry] });
    this.runs = new Counter({ name: 'ally_billing_reconciliations_total', help: 'Reconciliation runs against Stripe meter summaries', labelNames: ['outcome'], registers: [registry] });
  }

  /**
   * Every replica looks once an hour (and soon after it starts, so pods
   * replaced more often than daily still reconcile) whether a run is due; one
   * of them claims it (`claimDue`), the others do nothing: each run asks
   * Stripe for every customer and may raise events, so it happens once.
   */
  onApplicationBootstrap() {
    const every = this.config.RECONCILE_INTERVAL_MS;
    if (every <= 0) return;
    const check = () => void this.runIfDue().catch((err) => this.logger.warn({ err: String(err) }, 'meter reconciliation failed'));
    this.timers = [setTimeout(check, Math.min(every, FIRST_CHECK_MS)), setInterval(check, Math.min(every, CHECK_EVERY_MS))];
    for (const t of this.timers) t.unref();
  }

  onApplicationShutdown() {
    for (const t of this.timers) clearTimeout(t);
  }

  /** Runs the daily reconciliation if no replica started one within RECONCILE_INTERVAL_MS; whether it ran. */
  async runIfDue(): Promise<boolean> {
    if (!(await claimDue(this.ds, 'meter-reconciliation', this.config.RECONCILE_INTERVAL_MS))) return false;
    await this.daily();
    return true;
  }

  /** The current month, and in the first days of a month also the one before (late reports, Stripe's own lag). */
  private async daily(): Promise<void> {
    const now = new Date();
    const periods = [currentPeriod(now)];
    if (now.getUTCDate() <= 3) periods.unshift(currentPeriod(new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 15))));
    for (const p of periods) await this.reconcile(p).catch((err) => this.logger.warn({ err: String(err), period: p }, 'meter reconciliation failed'));
  }

  async reconcile(period = currentPeriod()): Promise<ReconciliationResult> {
    try {
      const result = await this.run(period);
      this.runs.inc({ outcome: 'ok' });
      return result;
    } catch (err) {
      this.runs.inc({ outcome: 'failed' });
      throw err;
    }
  }

  private async run(period: string): Promise<ReconciliationResult> {
    const [y, m] = period.split('-').map(Number);
    const start = Date.UTC(y, m - 1, 1) / 1000;
    const monthEnd = Date.UTC(y, m, 1) / 1000;
    // Stripe wants minute-aligned bounds; a running month ends at the next full minute.
    const end = Math.min(monthEnd, Math.ceil(Date.now() / 60_000) * 60 + 60);
    if (end <= start) return { period, workspaces: 0, discrepancies: [], unchecked: [] };
    const meterId = await this.meter();
    // Per workspace, over all its customers: an erased subject's pseudonym may hold several, its ledger rows metered to any of them.
    const rows: { workspace: string; customers: string[]; tokens: string }[] = await this.ds.query(
      `SELECT c.workspace, array_agg(c.stripe_customer_id ORDER BY c.stripe_customer_id) AS customers,
              (SELECT coalesce(sum(l.tokens), 0) FROM ledger l
                WHERE l.workspace = c.workspace AND l.meter_status = 'reported'
                  AND l.created_at >= to_timestamp($1) AND l.created_at < to_timestamp($2)) AS tokens
         FROM customers c
        GROUP BY c.workspace`,
      [start, monthEnd],
    );
    const discrepancies: Discrepancy[] = [];
    const unchecked: string[] = [];
    for (const row of rows) {
      let stripeTokens = 0;
      try {
        for (const customer of row.customers) {
          for await (const s of this.stripe.stripe.billing.meters.listEventSummaries(meterId, { customer, start_time: start, end_time: end })) {
            stripeTokens += s.aggregated_value;
          }
        }
      } catch (err) {
        // A customer Stripe does not have keeps its workspace from being compared, not every other one. Any other
        // failure (Stripe away) fails the run, which the metric counts: nothing is reported as in order that was not.
        const { code, param } = err as { code?: string; param?: string };
        if (code !== 'resource_missing' || param !== 'customer') throw err;
        this.logger.warn({ workspace: row.workspace, customers: row.customers, period, err: String(err) }, 'Stripe has no such customer: the workspace is not compared');
        unchecked.push(row.workspace);
        continue;
      }
      const ledgerTokens = Number(row.tokens);
      if (ledgerTokens === stripeTokens) continue;
      const d = { workspace: row.workspace, period, ledgerTokens, stripeTokens };
      discrepancies.push(d);
      this.found.inc();
      this.logger.error({ ...d, customers: row.customers, meter: meterId }, 'ledger and Stripe meter totals differ');
      await this.ds.transaction((em) => this.outbox.append(em, 'billing.meter.discrepancy-found', d));
    }
    this.open.set({ period }, discrepancies.length);
    this.logger.info({ period, workspaces: rows.length, discrepancies: discrepancies.length, unchecked: unchecked.length }, 'meter reconciliation done');
    return { period, workspaces: rows.length, discrepancies, unchecked };
  }

  /** STRIPE_METER_ID, or the active meter for STRIPE_METER_EVENT_NAME. */
  private async meter(): Promise<string> {
    if (this.config.STRIPE_METER_ID) return this.config.STRIPE_METER_ID;
    if (this.meterId) return this.meterId;
    for await (const meter of this.stripe.stripe.billing.meters.list({ status: 'active' })) {
      if (meter.event_name === this.config.STRIPE_METER_EVENT_NAME) return (this.meterId = meter.id);
    }
    throw new Error(`No active Stripe billing meter for event name "${this.config.STRIPE_METER_EVENT_NAME}" (set STRIPE_METER_ID)`);
  }
}
