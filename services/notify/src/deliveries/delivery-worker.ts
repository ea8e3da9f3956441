import { Inject, Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import type { Logger } from 'pino';
import { Counter, Registry } from 'prom-client';
import { PacedWorker } from '@ally/messaging';
import { LOGGER } from '@ally/platform';
import { BrevoMailer } from '../brevo/brevo-mailer.js';
import { NOTIFY_CONFIG, type NotifyConfig } from '../config.js';
import { MailRenderer } from '../mails/mail-renderer.js';
import { isRestricted } from '../privacy/restrictions.consumer.js';
import type { DeliveryEntity } from './delivery.entity.js';

const BATCH = 10;
/** A row left in `sending` this long belongs to a worker that died; it is retried. */
export const STALE_SENDING = `interval '2 minutes'`;
/**
 * A worker writes the outcome only of its own claim (`attempts` counts claims): one that stalled past
 * STALE_SENDING while another took the row over would otherwise make a mail already sent due again.
 */
const stillClaimed = (attempts: string) => `status = 'sending' AND attempts = ${attempts}`;

type ClaimedRow = Pick<DeliveryEntity, 'id' | 'template' | 'locale' | 'userId' | 'orgId' | 'recipient' | 'variables' | 'attempts' | 'required'> & { suppressed: boolean; ageMs: number };

/**
 * Sends pending deliveries through Brevo. Rows are claimed with
 * `FOR UPDATE SKIP LOCKED`, so replicas share the work; 429, 5xx and network
 * errors are retried with exponential backoff up to NOTIFY_RETRY_MAX_MS (Brevo's
 * Retry-After wins when longer) for NOTIFY_GIVE_UP_HOURS, then the delivery is dead; other
 * refusals are dead at once. Each attempt carries the delivery's id as Brevo's
 * idempotency key, so a retry of a send Brevo took but answered too late mails
 * no one twice. Once sent, the address and variables are erased
 * from the log, leaving only the address hash.
 */
@Injectable()
export class DeliveryWorker extends PacedWorker {
  private readonly mails: Counter;
  private readonly deadLetters: Counter;

  constructor(
    private readonly ds: DataSource,
    private readonly mailer: BrevoMailer,
    private readonly renderer: MailRenderer,
    @Inject(NOTIFY_CONFIG) private readonly config: NotifyConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    registry: Registry,
  ) {
    super(config.NOTIFY_POLL_MS, (err) => logger.warn({ err: String(err) }, 'delivery pass failed'));
    this.mails = new Counter({ name: 'ally_notify_mails_total', help: 'Mail delivery attempts by template and outcome', labelNames: ['template', 'outcome'], registers: [registry] });
    this.deadLetters = new Counter({ name: 'ally_notify_dead_letters_total', help: 'Mails given up on (permanent refusal or attempts exhausted)', labelNames: ['template'], registers: [registry] });
  }

  /** Until when Brevo told this replica to wait (its 429's Retry-After, a refused key): no mail is claimed before. */
  private pausedUntil = 0;

  protected async pass(): Promise<void> {
    while (!this.shuttingDown && Date.now() >= this.pausedUntil) {
      const rows = await this.claim();
      if (rows.length === 0) return;
      // Every send of the batch is seen to its end (one failing must not leave the others running past a stop).
      const failed = (await Promise.allSettled(rows.map((row) => this.deliver(row)))).find((r) => r.status === 'rejected');
      if (failed) throw (failed as PromiseRejectedResult).reason;
    }
  }

  private async claim(): Promise<ClaimedRow[]> {
    const [rows] = await this.ds.query(
      `UPDATE deliveries d SET status = 'sending', attempts = d.attempts + 1, updated_at = now()
        WHERE d.id IN (
          SELECT id FROM deliveries
           WHERE (status = 'pending' AND next_attempt_at <= now())
              OR (status = 'sending' AND updated_at < now() - ${STALE_SENDING})
           ORDER BY next_attempt_at LIMIT ${BATCH} FOR UPDATE SKIP LOCKED)
        RETURNING d.id, d.template, d.locale, d.user_id AS "userId", d.org_id AS "orgId", d.recipient, d.variables, d.attempts, d.required,
                  (extract(epoch FROM now() - d.created_at) * 1000)::float8 AS "ageMs",
                  EXISTS (SELECT 1 FROM suppressions s WHERE s.recipient_hash = d.recipient_hash) AS suppressed`,
    );
    return rows as ClaimedRow[];
  }

  private async deliver(row: ClaimedRow): Promise<void> {
    if (row.suppressed && !row.required) {
      await this.finish(row, 'suppressed', { lastError: 'address is on the suppression list' });
      this.mails.inc({ template: row.template, outcome: 'suppressed' });
      return;
    }
    // A restriction (Art. 18) made while the mail waited (for a retry, say) stops it as it would have stopped the event.
    if (row.userId && !row.required && (await isRestricted(this.ds.manager, row.userId, row.orgId ?? undefined))) {
      await this.finish(row, 'suppressed', { lastError: 'the recipient restricted, or objected to, the processing of their data' });
      this.mails.inc({ template: row.template, outcome: 'restricted' });
      return;
    }
    let outcome;
    try {
      const mail = this.renderer.render(row.template, row.locale, row.variables ?? {});
      outcome = await this.mailer.send(row.recipient!, mail, [row.template], row.id, row.attempts > 1);
    } catch (err) {
      outcome = { ok: false as const, retryable: false as const, error: `cannot render: ${(err as Error).message}` };
    }
    if (outcome.ok) {
      await this.finish(row, 'sent', outcome.messageId ? { providerMessageId: outcome.messageId } : { lastError: 'Brevo had taken this mail at an earlier attempt (its idempotency key); its message id is unknown' });
      this.mails.inc({ template: row.template, outcome: 'sent' });
      return;
    }
    // Brevo away (5xx, 429, the network) is waited out for NOTIFY_GIVE_UP_HOURS, not a number of attempts: a mail
    // accepted during a long outage still goes once Brevo is back.
    if (outcome.retryable && row.ageMs < this.config.NOTIFY_GIVE_UP_HOURS * 3_600_000) {
      const backoff = Math.min(this.config.NOTIFY_RETRY_BASE_MS * 2 ** Math.min(row.attempts - 1, 30), this.config.NOTIFY_RETRY_MAX_MS);
      // Spread a little, so the mails of one outage do not all come back at the same moment.
      const delayMs = Math.max(backoff, outcome.retryAfterMs ?? 0) * (1 + Math.random() * 0.1);
      // Brevo refuses us, not this mail: the rest of the backlog waits too instead of running into the same wall.
      // As long as Brevo said (or the first retry's delay), not this mail's own backoff after many attempts.
      if (outcome.pause) this.pausedUntil = Math.max(this.pausedUntil, Date.now() + (outcome.retryAfterMs ?? this.config.NOTIFY_RETRY_BASE_MS));
      await this.ds.query(
        `UPDATE deliveries SET status = 'pending', next_attempt_at = now() + make_interval(secs => $2), last_error = $3, updated_at = now()
          WHERE id = $1 AND ${stillClaimed('$4')}`,
        [row.id, delayMs / 1000, outcome.error, row.attempts],
      );
      this.mails.inc({ template: row.template, outcome: 'retry' });
      return;
    }
    await this.finish(row, 'dead', { lastError: outcome.error });
    this.mails.inc({ template: row.template, outcome: 'dead' });
    this.deadLetters.inc({ template: row.template });
    this.logger.error({ deliveryId: row.id, template: row.template, attempts: row.attempts, error: outcome.error }, 'mail dead-lettered');
  }

  /** A final state: the address and the variables (tokens, names) leave the log. */
  private async finish(row: Pick<ClaimedRow, 'id' | 'attempts'>, status: 'sent' | 'suppressed' | 'dead', extra: { providerMessageId?: string; lastError?: string }): Promise<void> {
    await this.ds.query(
      `UPDATE deliveries SET status = $2, provider_message_id = coalesce($3, provider_message_id), last_error = coalesce($4, last_error),
              sent_at = CASE WHEN $2 = 'sent' THEN now() ELSE sent_at END, recipient = NULL, variables = NULL, updated_at = now()
        WHERE id = $1 AND ${stillClaimed('$5')}`,
      [row.id, status, extra.providerMessageId ?? null, extra.lastError ?? null, row.attempts],
    );
  }
}
