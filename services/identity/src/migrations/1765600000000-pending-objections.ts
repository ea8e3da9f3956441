import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Objections to the login audit not yet decided (Art. 21(1) GDPR: processing
 * stops from the objection unless compelling grounds are shown): while one is
 * pending, sign-ins are recorded as for an upheld one. One row per request, so
 * deciding one of two leaves the other standing.
 */
export class PendingObjections1765600000000 implements MigrationInterface {
  name = 'PendingObjections1765600000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE pending_objections (
        request_id uuid PRIMARY KEY,
        user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE INDEX pending_objections_user ON pending_objections (user_id)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE pending_objections`);
  }
}
