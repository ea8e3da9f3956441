import type { DataSource, EntityManager } from 'typeorm';
import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { withPrefix } from '@ally/contracts';
import { PgListener } from '@ally/persistence';
import { isStreamMissing, restoreStreams } from './jetstream.js';
import { outboxChannel } from './messaging.migration.js';
import { getOrCreate } from './metrics.js';
import { Pacer } from './pacer.js';
import { CORRELATION_HEADER } from './rpc-client.js';

export interface OutboxRelayOptions {
  dataSource: DataSource;
  /** Same role as the service; a dedicated connection for LISTEN. */
  databaseUrl: string;
  schema: string;
  nats: NatsConnection;
  prefix: string;
  logger: Logger;
  registry: Registry;
  pollIntervalMs?: number;
  batchSize?: number;
  /** How long one publish waits for JetStream's ack before the pass gives up (default 5 s). */
  publishTimeoutMs?: number;
  /** How long a NOTIFY waits for others before its pass (default 20 ms): one pass per busy moment, not per row. */
  settleMs?: number;
  /** Fields of an event's `data` a published row forgets (one-time tokens: the stream carries them to their consumer). */
  secrets?: readonly string[];
}

interface OutboxRow {
  id: string;
  subject: string;
  payload: { correlationId?: string };
}

/**
 * Publishes committed outbox rows to JetStream and marks them sent. Woken by
 * NOTIFY, polling as a fallback; every replica runs one, and they take turns
 * (`FOR UPDATE`), so events reach the stream in outbox order. If NATS is
 * down, rows stay unsent and are retried: nothing is lost,
 * and the row id as `Nats-Msg-Id` plus the consumers' inbox make a retry after
 * a lost ack harmless.
 */
export class OutboxRelay {
  private readonly js: JetStreamClient;
  /** NOTIFY wakes the relay at once; polling covers the time its connection is away. */
  private readonly listener: PgListener;
  private running = false;
  private readonly pacer: Pacer;
  private readonly published: Counter;
  private readonly failures: Counter;
  private readonly pending: Gauge;

  constructor(private readonly opts: OutboxRelayOptions) {
    this.pacer = new Pacer(() => this.drainAll(), opts.pollIntervalMs ?? 1_000, (err) => opts.logger.warn({ err: String(err) }, 'outbox relay pass failed'), opts.settleMs ?? 20);
    this.js = jetstream(opts.nats, { timeout: opts.publishTimeoutMs ?? 5_000 });
    this.listener = new PgListener({
      databaseUrl: opts.databaseUrl,
      channel: outboxChannel(opts.schema),
      logger: opts.logger,
      onNotify: () => this.wake(),
      // Rows committed while nobody listened: one pass now rather than at the next poll.
      onRelisten: () => this.wake(),
      lostMessage: 'outbox listener lost its connection; polling until it is back',
    });
    this.published = getOrCreate(opts.registry, 'ally_outbox_published_total', () =>
      new Counter({ name: 'ally_outbox_published_total', help: 'Outbox events published to JetStream', registers: [opts.registry] }),
    );
    this.failures = getOrCreate(opts.registry, 'ally_outbox_publish_failures_total', () =>
      new Counter({ name: 'ally_outbox_publish_failures_total', help: 'Failed outbox publish attempts', registers: [opts.registry] }),
    );
    this.pending = getOrCreate(opts.registry, 'ally_outbox_pending', () =>
      new Gauge({ name: 'ally_outbox_pending', help: 'Outbox rows not yet published (last batch)', registers: [opts.registry] }),
    );
  }

  async start(): Promise<void> {
    this.running = true;
    try {
      await this.listener.start();
    } catch (err) {
      this.running = false;
      throw err;
    }
    this.pacer.start();
  }

  /**
   * Stops listening and polling after one last pass, until `deadline` (ms since the epoch) at the latest: what the
   * service committed as it wound down goes out now, not at its next start. Rows a pass left wait for the next start.
   */
  async stop(deadline = Infinity): Promise<void> {
    // The deadline also ends the pass in flight (a backlog after an outage), between batches.
    const timer = deadline === Infinity ? undefined : setTimeout(() => (this.running = false), Math.max(0, deadline - Date.now()));
    await this.listener.stop();
    await this.pacer.stop();
    if (this.running && deadline > Date.now()) {
      await this.drainAll().catch((err) => this.opts.logger.warn({ err: String(err) }, 'the outbox relay’s last pass failed; the rows wait for the next start'));
    }
    clearTimeout(timer);
    this.running = false;
  }

  /** Runs one drain at a time; a wake during a drain schedules one more. */
  wake(): void {
    this.pacer.wake();
  }

  /** Publishes until the outbox is empty or NATS refuses. */
  async drainAll(): Promise<void> {
    while (this.running && (await this.drainBatch()) === 'more');
  }

  private async drainBatch(): Promise<'more' | 'done'> {
    const batchSize = this.opts.batchSize ?? 100;
    return this.opts.dataSource.transaction(async (em) => {
      const rows: OutboxRow[] = await em.query(
        `SELECT id, subject, payload FROM outbox WHERE sent_at IS NULL ORDER BY created_at, id LIMIT $1 FOR UPDATE`,
        [batchSize],
      );
      // FOR UPDATE, not SKIP LOCKED: a replica waits for the one publishing the rows before its own
      // instead of publishing later rows first (every replica hears every NOTIFY), so the stream
      // keeps the outbox's order across replicas too. Both lock in the same order: no deadlock.
      if (rows.length === 0) return 'done';
      // One after the other, stopping at the first failure: a consumer must never see an
      // event before one written earlier (a settings change undone by its older self).
      const sent: string[] = [];
      let failed: { reason: unknown } | undefined;
      for (const row of rows) {
        try {
          await this.publish(row);
          sent.push(row.id);
        } catch (reason) {
          failed = { reason };
          break;
        }
      }
      if (sent.length) await this.markSent(em, sent);
      this.published.inc(sent.length);
      if (failed) {
        this.failures.inc();
        const failedId = rows[sent.length].id;
        await em.query(`UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1`, [failedId, String(failed.reason).slice(0, 500)]);
        this.pending.set(rows.length - sent.length);
        this.opts.logger.warn({ err: String(failed.reason), pending: rows.length - sent.length }, 'outbox publish failed; will retry');
        return 'done';
      }
      this.pending.set(0);
      return rows.length === batchSize ? 'more' : 'done';
    });
  }

  /** Published: kept for the stream's days (an erasure finds its subject's rows), without the secrets the stream carried on. */
  private async markSent(em: EntityManager, ids: string[]): Promise<void> {
    const secrets = this.opts.secrets ?? [];
    if (!secrets.length) {
      await em.query(`UPDATE outbox SET sent_at = now() WHERE id = ANY($1::uuid[])`, [ids]);
      return;
    }
    await em.query(
      `UPDATE outbox SET sent_at = now(),
              payload = CASE WHEN jsonb_typeof(payload->'data') = 'object' THEN jsonb_set(payload, '{data}', (payload->'data') - $2::text[]) ELSE payload END
        WHERE id = ANY($1::uuid[])`,
      [ids, secrets],
    );
  }

  /**
   * NATS that came back without its store has no stream to take the event:
   * the streams are created again (at most every few seconds, see
   * `restoreStreams`) and the publish tried once more.
   */
  private async publish(row: OutboxRow): Promise<void> {
    const h = natsHeaders();
    if (row.payload.correlationId) h.set(CORRELATION_HEADER, row.payload.correlationId);
    const send = () => this.js.publish(withPrefix(this.opts.prefix, row.subject), JSON.stringify(row.payload), { msgID: row.id, headers: h });
    try {
      await send();
    } catch (err) {
      if (!isStreamMissing(err)) throw err;
      await restoreStreams(this.opts.nats, { prefix: this.opts.prefix });
      await send();
    }
  }
}
