import pg from 'pg';
import type { DataSource } from 'typeorm';
import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { withPrefix } from '@ally/contracts';
import { outboxChannel } from './messaging.migration.js';
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
}

interface OutboxRow {
  id: string;
  subject: string;
  payload: { correlationId?: string };
}

/**
 * Publishes committed outbox rows to JetStream and marks them sent. Woken by
 * NOTIFY, polling as a fallback; `FOR UPDATE SKIP LOCKED` lets every replica
 * run one. If NATS is down, rows stay unsent and are retried: nothing is lost,
 * and the row id as `Nats-Msg-Id` plus the consumers' inbox make a retry after
 * a lost ack harmless.
 */
export class OutboxRelay {
  private readonly js: JetStreamClient;
  private listener?: pg.Client;
  private running = false;
  private readonly pacer: Pacer;
  private readonly published: Counter;
  private readonly failures: Counter;
  private readonly pending: Gauge;

  constructor(private readonly opts: OutboxRelayOptions) {
    this.pacer = new Pacer(() => this.drainAll(), opts.pollIntervalMs ?? 1_000, (err) => opts.logger.warn({ err: String(err) }, 'outbox relay pass failed'), opts.settleMs ?? 20);
    this.js = jetstream(opts.nats, { timeout: opts.publishTimeoutMs ?? 5_000 });
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
    await this.listen();
    this.pacer.start();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.pacer.stop();
    await this.listener?.end().catch(() => undefined);
    this.listener = undefined;
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
        `SELECT id, subject, payload FROM outbox WHERE sent_at IS NULL ORDER BY created_at, id LIMIT $1 FOR UPDATE SKIP LOCKED`,
        [batchSize],
      );
      if (rows.length === 0) return 'done';
      // One after the other, stopping at the first failure: a consumer must never see an
      // event before one written earlier (a settings change undone by its older self).
      const sent: string[] = [];
      let failed: { reason: unknown } | undefined;
      for (const row of rows) {
        try {
          const h = natsHeaders();
          if (row.payload.correlationId) h.set(CORRELATION_HEADER, row.payload.correlationId);
          await this.js.publish(withPrefix(this.opts.prefix, row.subject), JSON.stringify(row.payload), { msgID: row.id, headers: h });
          sent.push(row.id);
        } catch (reason) {
          failed = { reason };
          break;
        }
      }
      if (sent.length) await em.query(`UPDATE outbox SET sent_at = now() WHERE id = ANY($1::uuid[])`, [sent]);
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

  private async listen(): Promise<void> {
    const client = new pg.Client({ connectionString: this.opts.databaseUrl });
    client.on('error', (err) => {
      this.opts.logger.warn({ err: String(err) }, 'outbox listener lost its connection; polling until it is back');
      this.listener = undefined;
      setTimeout(() => this.running && this.listen().catch(() => undefined), 1_000);
    });
    client.on('notification', () => this.wake());
    await client.connect();
    await client.query(`LISTEN ${outboxChannel(this.opts.schema)}`);
    this.listener = client;
  }
}

function getOrCreate<T>(registry: Registry, name: string, create: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? create();
}
