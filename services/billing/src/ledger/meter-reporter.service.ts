import { Inject, Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import type { Logger } from 'pino';
import { Counter, Registry } from 'prom-client';
import { PacedWorker } from '@ally/messaging';
import { LOGGER } from '@ally/platform';
import { BILLING_CONFIG, type BillingConfig } from '../config.js';
import { isStripeRefusal, StripeClient } from '../stripe/stripe.client.js';

interface PendingRow {
  message_id: string;
  workspace: string;
  tokens: number;
  created_at: Date;
  meter_attempts: number;
  meter_refusals: number;
  meter_resends: number;
  stripe_customer_id: string | null;
}

/**
 * Reports each ledger entry to Stripe's billing meter once. The entry's
 * message id is the meter event's `identifier`, so a retry after a lost
 * answer is de-duplicated by Stripe; but Stripe forgets identifiers after
 * 24 hours, so what guarantees "once" is the ledger row marked reported.
 * Failures are retried with backoff until Stripe accepts.
 */
@Injectable()
export class MeterReporter extends PacedWorker {
  private readonly reported: Counter;
  private readonly failures: Counter;

  constructor(
    private readonly ds: DataSource,
    private readonly stripe: StripeClient,
    @Inject(BILLING_CONFIG) private readonly config: BillingConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    registry: Registry,
  ) {
    super(config.METER_POLL_MS, (err) => logger.warn({ err: String(err) }, 'meter reporting pass failed'));
    this.reported = new Counter({ name: 'ally_billing_meter_events_reported_total', help: 'Usage reported to Stripe billing meters', registers: [registry] });
    this.failures = new Counter({ name: 'ally_billing_meter_event_failures_total', help: 'Failed attempts to report usage to Stripe', registers: [registry] });
  }

  protected pass(): Promise<number> {
    return this.drain();
  }

  /** Reports until nothing is due; returns how many were reported. */
  async drain(): Promise<number> {
    let total = 0;
    while (!this.shuttingDown) {
      const n = await this.batch();
      total += n;
      if (n === 0) return total;
    }
    return total;
  }

  /**
   * Claims a batch (due again after CLAIM_SECONDS, should this process die
   * with it: Stripe drops an event whose identifier it has), then reports its
   * entries, METER_REPORT_CONCURRENCY at a time, outside any transaction: a
   * slow Stripe holds no ledger row locked (an erasure renaming the rows would
   * wait for it) and no connection. What went through is marked in one
   * statement; should that fail, the claim runs out and the entries go again
   * under the identifiers Stripe already has.
   */
  private async batch(): Promise<number> {
    // An UPDATE's answer is [rows, count].
    const [rows]: [PendingRow[], number] = await this.ds.query(
      `UPDATE ledger l SET meter_next_at = now() + make_interval(secs => $2)
         FROM (SELECT l2.message_id, c.stripe_customer_id
                 FROM ledger l2
                 -- One customer per workspace in use; an erased subject's pseudonym may hold several (each deleted at Stripe): the latest.
                 LEFT JOIN LATERAL (SELECT stripe_customer_id FROM customers c WHERE c.workspace = l2.workspace ORDER BY c.created_at DESC LIMIT 1) c ON true
                WHERE l2.meter_status = 'pending' AND l2.meter_next_at <= now()
                ORDER BY l2.seq LIMIT $1 FOR UPDATE OF l2 SKIP LOCKED) due
        WHERE l.message_id = due.message_id
        RETURNING l.message_id, l.workspace, l.tokens, l.created_at, l.meter_attempts, l.meter_refusals, l.meter_resends, due.stripe_customer_id`,
      [this.config.METER_REPORT_BATCH, CLAIM_SECONDS],
    );
    // No Stripe customer (Free, never subscribed): nothing to bill, nothing to meter.
    const unmetered = rows.filter((r) => !r.stripe_customer_id).map((r) => r.message_id);
    const metered = rows.filter((r) => r.stripe_customer_id);
    const reported: PendingRow[] = [];
    let next = 0;
    const reporter = async () => {
      while (next < metered.length && !this.shuttingDown) {
        const row = metered[next++];
        if (await this.report(row)) reported.push(row);
      }
    };
    // Every reporter ends before the batch is marked, also when one fails (its row's write, say): none goes on calling Stripe unawaited.
    const ended = await Promise.allSettled(Array.from({ length: Math.min(this.config.METER_REPORT_CONCURRENCY, metered.length) }, reporter));
    const failed = ended.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (next < metered.length) {
      // Stopping: the rest of the claim is due again at once, for the next replica or start.
      await this.ds.query(`UPDATE ledger SET meter_next_at = now() WHERE message_id = ANY($1::uuid[]) AND meter_status = 'pending'`, [metered.slice(next).map((r) => r.message_id)]);
    }
    if (unmetered.length) await this.ds.query(`UPDATE ledger SET meter_status = 'not_metered' WHERE message_id = ANY($1::uuid[])`, [unmetered]);
    if (reported.length) {
      // Only as sent: an entry Stripe's error report queued again meanwhile (a replica that took it over when this
      // claim ran out reported it, and Stripe dropped it) is still to be sent under its next identifier.
      await this.ds.query(
        `UPDATE ledger l SET meter_status = 'reported', reported_at = now(), meter_attempts = meter_attempts + 1
           FROM unnest($1::uuid[], $2::int[]) AS r(id, resends)
          WHERE l.message_id = r.id AND l.meter_status = 'pending' AND l.meter_resends = r.resends`,
        [reported.map((r) => r.message_id), reported.map((r) => r.meter_resends)],
      );
      this.reported.inc(reported.length);
    }
    // What went through is marked; the failed reporter's rest of the claim comes due again when it runs out.
    if (failed) throw failed.reason;
    return unmetered.length + reported.length;
  }

  /** One entry to Stripe; true when Stripe has it (now, or from an earlier attempt), else its failure is on its row. */
  private async report(row: PendingRow): Promise<boolean> {
    try {
      await this.stripe.stripe.billing.meterEvents.create({
        event_name: this.config.STRIPE_METER_EVENT_NAME,
        identifier: meterIdentifier(row.message_id, row.meter_resends),
        timestamp: Math.floor(new Date(row.created_at).getTime() / 1000),
        payload: { stripe_customer_id: row.stripe_customer_id!, value: String(row.tokens) },
      });
      return true;
    } catch (err) {
      if (isDuplicate(err)) return true;
      this.failures.inc();
      // Only Stripe's refusals count towards giving up; a 5xx or a 429 is Stripe's passing fault.
      if (isStripeRefusal(err) && row.meter_refusals + 1 >= REFUSALS_BEFORE_GIVING_UP) {
        const reason = String((err as Error).message ?? err).slice(0, 300);
        await this.ds.query(`UPDATE ledger SET meter_status = 'refused', meter_error = $2, meter_attempts = meter_attempts + 1, meter_refusals = meter_refusals + 1 WHERE message_id = $1`, [row.message_id, reason]);
        this.logger.error({ messageId: row.message_id, workspace: row.workspace, reason }, 'Stripe refuses this usage entry for good; left as refused (reconciliation counts it)');
        return false;
      }
      const delay = Math.min(3600, 2 ** Math.min(row.meter_attempts, 12));
      await this.ds.query(
        `UPDATE ledger SET meter_attempts = meter_attempts + 1, meter_refusals = meter_refusals + $3, meter_next_at = now() + make_interval(secs => $2) WHERE message_id = $1`,
        [row.message_id, delay, isStripeRefusal(err) ? 1 : 0],
      );
      this.logger.warn({ err: String(err), messageId: row.message_id }, 'meter event refused; will retry');
      return false;
    }
  }
}

/**
 * The identifier Stripe deduplicates an entry's meter event by: its message id, and after Stripe dropped it
 * (a meter error report) the how-manieth re-send, since Stripe takes an identifier it has seen as counted.
 */
export const meterIdentifier = (messageId: string, resends: number): string => (resends ? `${messageId}.r${resends}` : messageId);

/** The ledger entry a meter event's identifier names, and which sending of it (0: the first). */
export function sendingOf(identifier: string): { messageId: string; resends: number } | undefined {
  const m = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?:\.r(\d{1,4}))?$/i.exec(identifier);
  return m ? { messageId: m[1].toLowerCase(), resends: Number(m[2] ?? 0) } : undefined;
}

/** How long a claimed batch is left to its reporter before another may take it (the reporter died). */
const CLAIM_SECONDS = 120;

/** Times Stripe must refuse an entry as invalid before it is given up (a refusal could be a passing fault of Stripe's). */
const REFUSALS_BEFORE_GIVING_UP = 3;

/** Stripe already has an event with this identifier: our earlier attempt got through. */
function isDuplicate(err: unknown): boolean {
  const e = err as { code?: string; raw?: { code?: string }; message?: string };
  return e?.code === 'resource_already_exists' || e?.raw?.code === 'resource_already_exists' || /already exists/i.test(e?.message ?? '');
}
