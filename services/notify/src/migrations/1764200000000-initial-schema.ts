import type { MigrationInterface, QueryRunner } from 'typeorm';
import { createMessagingTables, dropMessagingTables } from '@ally/messaging';

export class InitialSchema1764200000000 implements MigrationInterface {
  name = 'InitialSchema1764200000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE deliveries (
        id uuid PRIMARY KEY,
        event_id uuid NOT NULL,
        template text NOT NULL,
        locale text NOT NULL,
        user_id uuid,
        recipient text,
        recipient_hash text NOT NULL,
        variables jsonb,
        required boolean NOT NULL DEFAULT false,
        status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sending', 'sent', 'delivered', 'bounced', 'suppressed', 'dead')),
        attempts int NOT NULL DEFAULT 0,
        next_attempt_at timestamptz NOT NULL DEFAULT now(),
        last_error text,
        provider_message_id text,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        sent_at timestamptz,
        UNIQUE (event_id, template)
      )`);
    await q.query(`CREATE INDEX deliveries_due_idx ON deliveries (next_attempt_at) WHERE status = 'pending'`);
    await q.query(`CREATE INDEX deliveries_user_idx ON deliveries (user_id)`);
    await q.query(`CREATE INDEX deliveries_provider_idx ON deliveries (provider_message_id)`);
    await q.query(`CREATE INDEX deliveries_created_idx ON deliveries (created_at)`);
    await q.query(`
      CREATE TABLE suppressions (
        recipient_hash text PRIMARY KEY,
        reason text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    await createMessagingTables(q, 'notify');
  }

  async down(q: QueryRunner): Promise<void> {
    await dropMessagingTables(q);
    await q.query(`DROP TABLE IF EXISTS suppressions`);
    await q.query(`DROP TABLE IF EXISTS deliveries`);
  }
}
