import type { MigrationInterface, QueryRunner } from 'typeorm';
import { createMessagingTables, dropMessagingTables } from '@ally/messaging';

export class InitialSchema1764600000000 implements MigrationInterface {
  name = 'InitialSchema1764600000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE requests (
        id uuid PRIMARY KEY,
        -- NULL once the subject is erased: only subject_hash is left (the tombstone's key).
        user_id uuid,
        subject_hash text NOT NULL,
        type text NOT NULL CHECK (type IN ('access', 'portability', 'erasure', 'restriction', 'objection', 'rectification')),
        scope text NOT NULL,
        status text NOT NULL DEFAULT 'received' CHECK (status IN ('received', 'in_progress', 'completed', 'failed')),
        due_at timestamptz NOT NULL,
        escalated_at timestamptz,
        failure text,
        -- Access and portability: the package's data key, wrapped by PRIVACY_KEK; deleted with the package.
        wrapped_key bytea,
        download_until timestamptz,
        details jsonb NOT NULL DEFAULT '{}',
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        completed_at timestamptz
      )`);
    await q.query(`CREATE INDEX requests_user_idx ON requests (user_id, created_at DESC)`);
    await q.query(`CREATE INDEX requests_status_idx ON requests (status, created_at DESC)`);
    await q.query(`CREATE INDEX requests_open_idx ON requests (due_at) WHERE status IN ('received', 'in_progress')`);
    await q.query(`
      CREATE TABLE request_steps (
        request_id uuid NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
        service text NOT NULL,
        action text NOT NULL CHECK (action IN ('export', 'erase', 'notify')),
        -- Steps of a lower phase finish before a higher one starts (identity's erasure is last).
        phase int NOT NULL DEFAULT 0,
        status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'completed', 'failed')),
        attempts int NOT NULL DEFAULT 0,
        next_attempt_at timestamptz NOT NULL DEFAULT now(),
        lease_until timestamptz,
        last_error text,
        result jsonb,
        completed_at timestamptz,
        PRIMARY KEY (request_id, service)
      )`);
    await q.query(`CREATE INDEX request_steps_due_idx ON request_steps (next_attempt_at) WHERE status IN ('pending', 'running')`);
    await q.query(`
      CREATE TABLE export_parts (
        request_id uuid NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
        service text NOT NULL,
        sealed bytea NOT NULL,
        PRIMARY KEY (request_id, service)
      )`);
    await q.query(`
      CREATE TABLE export_packages (
        request_id uuid PRIMARY KEY REFERENCES requests (id) ON DELETE CASCADE,
        user_id uuid NOT NULL,
        sealed bytea NOT NULL,
        size int NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL
      )`);
    await q.query(`CREATE INDEX export_packages_expiry_idx ON export_packages (expires_at)`);
    await q.query(`
      CREATE TABLE processor_notices (
        request_id uuid NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
        processor text NOT NULL,
        service text NOT NULL,
        action text NOT NULL CHECK (action IN ('erasure', 'rectification')),
        status text NOT NULL CHECK (status IN ('confirmed', 'delegated')),
        at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (request_id, processor, service)
      )`);
    await q.query(`
      CREATE TABLE tombstones (
        subject_hash text NOT NULL,
        request_id uuid NOT NULL,
        scope text NOT NULL,
        erased_at timestamptz NOT NULL DEFAULT now(),
        -- Rows per service and category: counts, no personal data.
        affected jsonb NOT NULL,
        PRIMARY KEY (subject_hash, request_id)
      )`);
    await q.query(`
      CREATE TABLE audit_log (
        seq bigint PRIMARY KEY,
        at timestamptz NOT NULL,
        -- 'subject:<hash>', 'staff:<user id>' or 'system'.
        actor text NOT NULL,
        action text NOT NULL,
        request_id uuid,
        subject_hash text,
        details jsonb NOT NULL DEFAULT '{}',
        prev_hash text NOT NULL,
        hash text NOT NULL
      )`);
    await q.query(`
      CREATE TABLE consents (
        id uuid PRIMARY KEY,
        subject_id text NOT NULL,
        purpose text NOT NULL,
        granted boolean NOT NULL,
        policy_version text NOT NULL,
        user_agent text,
        source text NOT NULL CHECK (source IN ('given', 'withdrawal')),
        recorded_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL
      )`);
    await q.query(`CREATE INDEX consents_subject_idx ON consents (subject_id, purpose, recorded_at DESC)`);
    await q.query(`CREATE INDEX consents_expiry_idx ON consents (expires_at)`);
    await q.query(`
      CREATE TABLE retention_policies (
        service text NOT NULL,
        category text NOT NULL,
        retention_days int,
        basis text NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        updated_by text NOT NULL,
        PRIMARY KEY (service, category)
      )`);
    await q.query(`
      CREATE TABLE retention_runs (
        id uuid PRIMARY KEY,
        status text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'completed', 'failed')),
        dry_run boolean NOT NULL,
        categories jsonb,
        trigger text NOT NULL CHECK (trigger IN ('schedule', 'compliance', 'cli')),
        started_by text,
        launched_as text NOT NULL DEFAULT 'in-process' CHECK (launched_as IN ('in-process', 'kubernetes-job')),
        job_name text,
        held_users int NOT NULL DEFAULT 0,
        errors jsonb NOT NULL DEFAULT '[]',
        created_at timestamptz NOT NULL DEFAULT now(),
        started_at timestamptz,
        finished_at timestamptz
      )`);
    await q.query(`
      CREATE TABLE retention_results (
        run_id uuid NOT NULL REFERENCES retention_runs (id) ON DELETE CASCADE,
        service text NOT NULL,
        category text NOT NULL,
        affected bigint NOT NULL,
        PRIMARY KEY (run_id, service, category)
      )`);
    await q.query(`
      CREATE TABLE legal_holds (
        id uuid PRIMARY KEY,
        -- NULL after the subject's erasure (only released holds can be erased around).
        user_id uuid,
        subject_hash text NOT NULL,
        reason text NOT NULL,
        created_by uuid NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        released_at timestamptz,
        released_by uuid
      )`);
    await q.query(`CREATE INDEX legal_holds_active_idx ON legal_holds (user_id) WHERE released_at IS NULL`);
    await createMessagingTables(q, 'privacy');
  }

  async down(q: QueryRunner): Promise<void> {
    await dropMessagingTables(q);
    for (const t of ['legal_holds', 'retention_results', 'retention_runs', 'retention_policies', 'consents', 'audit_log', 'tombstones', 'processor_notices', 'export_packages', 'export_parts', 'request_steps', 'requests']) {
      await q.query(`DROP TABLE IF EXISTS ${t}`);
    }
  }
}
