import type { MigrationInterface, QueryRunner } from 'typeorm';
import type { PurgeRule } from '@ally/persistence';

/**
 * Outbox and inbox tables, created by each service's first migration in its
 * own schema (search_path points there).
 */
export async function createMessagingTables(q: QueryRunner, schema: string): Promise<void> {
  await q.query(`
    CREATE TABLE outbox (
      id uuid PRIMARY KEY,
      subject text NOT NULL,
      type text NOT NULL,
      payload jsonb NOT NULL,
      headers jsonb NOT NULL DEFAULT '{}',
      created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
      sent_at timestamptz,
      attempts int NOT NULL DEFAULT 0,
      last_error text
    )`);
  await q.query(`CREATE INDEX outbox_unsent_idx ON outbox (created_at) WHERE sent_at IS NULL`);
  await q.query(`
    CREATE TABLE inbox (
      event_id uuid NOT NULL,
      consumer text NOT NULL,
      processed_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (event_id, consumer)
    )`);
  await q.query(`CREATE INDEX inbox_processed_idx ON inbox (processed_at)`);
  await q.query(`
    CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN PERFORM pg_notify('${outboxChannel(schema)}', ''); RETURN NULL; END $$`);
  await q.query(`CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify()`);
}

/**
 * The relay publishes in `created_at` order. `now()` is when the transaction
 * began: one that began first, waited for another's change to the same row and
 * committed after it had the earlier time, and a pass that found both (after
 * an outage, say) published the newer state before the older one. The time of
 * the insert follows the row's changes.
 */
export class OutboxInsertTime1766700000000 implements MigrationInterface {
  name = 'OutboxInsertTime1766700000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE outbox ALTER COLUMN created_at SET DEFAULT clock_timestamp()`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE outbox ALTER COLUMN created_at SET DEFAULT now()`);
  }
}

/** The inbox's rows go once no redelivery can come (MESSAGING_RETENTION_RULES): found by their age. */
export class InboxAge1766800000000 implements MigrationInterface {
  name = 'InboxAge1766800000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE INDEX IF NOT EXISTS inbox_processed_idx ON inbox (processed_at)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX IF EXISTS inbox_processed_idx`);
  }
}

/** The migrations of the messaging tables after their first, which every service's list includes (TypeORM runs them by timestamp). */
export const MESSAGING_MIGRATIONS = [OutboxInsertTime1766700000000, InboxAge1766800000000];

/**
 * Every service's housekeeping of its messaging tables (hourly, AgeRetentionService): published outbox rows after
 * the stream's 7 days; inbox rows after 30, when no copy of their event can come again (the stream keeps 7 days;
 * a dead-lettered event, replayable for 30, was never handled, so has no row).
 */
export const MESSAGING_RETENTION_RULES: PurgeRule[] = [
  { name: 'outbox', table: 'outbox', expired: `sent_at < now() - interval '7 days'` },
  { name: 'inbox', table: 'inbox', key: 'ctid', expired: `processed_at < now() - interval '30 days'` },
];

export async function dropMessagingTables(q: QueryRunner): Promise<void> {
  await q.query(`DROP TABLE IF EXISTS outbox`);
  await q.query(`DROP FUNCTION IF EXISTS outbox_notify()`);
  await q.query(`DROP TABLE IF EXISTS inbox`);
}

/** The LISTEN/NOTIFY channel that wakes the relay when a row is written. */
export const outboxChannel = (schema: string): string => `ally_outbox_${schema}`;
