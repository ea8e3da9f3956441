import type { MigrationInterface, QueryRunner } from 'typeorm';
import { createMessagingTables, dropMessagingTables } from '@ally/messaging';

export class InitialSchema1764500000000 implements MigrationInterface {
  name = 'InitialSchema1764500000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE customers (
        workspace text PRIMARY KEY,
        stripe_customer_id text NOT NULL UNIQUE,
        created_by uuid NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`
      CREATE TABLE subscriptions (
        workspace text PRIMARY KEY,
        stripe_subscription_id text NOT NULL UNIQUE,
        stripe_item_id text,
        plan text NOT NULL,
        status text NOT NULL,
        seats int NOT NULL DEFAULT 1,
        current_period_end timestamptz,
        cancel_at_period_end boolean NOT NULL DEFAULT false,
        -- Stripe's event time of the state we hold: older events never roll it back.
        stripe_version bigint NOT NULL DEFAULT 0,
        ended_at timestamptz,
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`
      CREATE TABLE processed_webhooks (
        event_id text PRIMARY KEY,
        type text NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`
      CREATE TABLE seat_counts (
        workspace text PRIMARY KEY,
        members int NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`
      CREATE TABLE ledger (
        seq bigserial UNIQUE,
        message_id uuid PRIMARY KEY,
        workspace text NOT NULL,
        user_id uuid NOT NULL,
        model text NOT NULL,
        deployment text NOT NULL,
        prompt_tokens int NOT NULL,
        completion_tokens int NOT NULL,
        tokens int NOT NULL,
        cost numeric(14, 6) NOT NULL,
        period text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        meter_status text NOT NULL DEFAULT 'pending' CHECK (meter_status IN ('pending', 'reported', 'not_metered')),
        meter_attempts int NOT NULL DEFAULT 0,
        meter_next_at timestamptz NOT NULL DEFAULT now(),
        reported_at timestamptz
      )`);
    await q.query(`CREATE INDEX ledger_usage_idx ON ledger (workspace, period)`);
    await q.query(`CREATE INDEX ledger_meter_idx ON ledger (meter_next_at) WHERE meter_status = 'pending'`);
    await q.query(`CREATE INDEX ledger_user_idx ON ledger (user_id)`);
    await q.query(`
      CREATE TABLE caps (
        workspace text NOT NULL,
        -- '' is the whole workspace; otherwise one member.
        user_id text NOT NULL DEFAULT '',
        monthly_tokens bigint NOT NULL,
        PRIMARY KEY (workspace, user_id)
      )`);
    await q.query(`
      CREATE TABLE quota_alerts (
        workspace text NOT NULL,
        period text NOT NULL,
        percent int NOT NULL,
        PRIMARY KEY (workspace, period, percent)
      )`);
    await q.query(`
      CREATE TABLE invoices (
        stripe_invoice_id text PRIMARY KEY,
        workspace text NOT NULL,
        number text,
        status text NOT NULL,
        currency text NOT NULL,
        subtotal bigint NOT NULL,
        tax bigint NOT NULL,
        total bigint NOT NULL,
        amount_paid bigint NOT NULL,
        customer_ref text NOT NULL,
        hosted_invoice_url text,
        created_at timestamptz NOT NULL,
        stripe_version bigint NOT NULL DEFAULT 0,
        -- After an erasure request: kept for the law, used for nothing else, the person replaced by a pseudonym.
        restricted boolean NOT NULL DEFAULT false
      )`);
    await q.query(`CREATE INDEX invoices_workspace_idx ON invoices (workspace, created_at DESC)`);
    await createMessagingTables(q, 'billing');
  }

  async down(q: QueryRunner): Promise<void> {
    await dropMessagingTables(q);
    for (const t of ['invoices', 'quota_alerts', 'caps', 'ledger', 'seat_counts', 'processed_webhooks', 'subscriptions', 'customers']) await q.query(`DROP TABLE IF EXISTS ${t}`);
  }
}
