import type { MigrationInterface, QueryRunner } from 'typeorm';
import { createMessagingTables, dropMessagingTables } from '@ally/messaging';

export class InitialSchema1764400000000 implements MigrationInterface {
  name = 'InitialSchema1764400000000';

  async up(q: QueryRunner): Promise<void> {
    // Per-user data keys, wrapped by the KEK; deleting a row crypto-shreds that user's content.
    await q.query(`
      CREATE TABLE data_keys (
        user_id uuid PRIMARY KEY,
        wrapped bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`
      CREATE TABLE assistants (
        id uuid PRIMARY KEY,
        workspace text NOT NULL,
        created_by uuid NOT NULL,
        name text NOT NULL,
        instructions text NOT NULL,
        model text,
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE INDEX assistants_workspace_idx ON assistants (workspace, created_by)`);
    await q.query(`
      CREATE TABLE conversations (
        id uuid PRIMARY KEY,
        user_id uuid NOT NULL,
        workspace text NOT NULL,
        title_enc bytea,
        assistant_id uuid REFERENCES assistants(id) ON DELETE SET NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE INDEX conversations_owner_idx ON conversations (user_id, workspace, updated_at DESC, id)`);
    await q.query(`
      CREATE TABLE messages (
        id uuid PRIMARY KEY,
        conversation_id uuid NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        user_id uuid NOT NULL,
        role text NOT NULL CHECK (role IN ('user', 'assistant')),
        content_enc bytea NOT NULL,
        model text,
        prompt_tokens int,
        completion_tokens int,
        residency jsonb,
        status text NOT NULL DEFAULT 'complete' CHECK (status IN ('complete', 'aborted')),
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE INDEX messages_conversation_idx ON messages (conversation_id, created_at, id)`);
    await q.query(`CREATE INDEX messages_user_idx ON messages (user_id)`);
    // Replica of identity's state that routing needs (event-carried state).
    await q.query(`
      CREATE TABLE user_settings (
        user_id uuid PRIMARY KEY,
        restrict_to_eu boolean NOT NULL DEFAULT true,
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`
      CREATE TABLE memberships (
        org_id uuid NOT NULL,
        user_id uuid NOT NULL,
        role text NOT NULL,
        PRIMARY KEY (org_id, user_id)
      )`);
    await q.query(`
      CREATE TABLE org_policies (
        org_id uuid PRIMARY KEY,
        eu_only boolean NOT NULL DEFAULT true,
        allowed_models text[],
        chat_retention_days int,
        blocked_terms text[] NOT NULL DEFAULT '{}',
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    await createMessagingTables(q, 'chat');
  }

  async down(q: QueryRunner): Promise<void> {
    await dropMessagingTables(q);
    for (const t of ['org_policies', 'memberships', 'user_settings', 'messages', 'conversations', 'assistants', 'data_keys']) await q.query(`DROP TABLE IF EXISTS ${t}`);
  }
}
