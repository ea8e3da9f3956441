import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Objections to the login audit as identity heard of them (Art. 21(1) GDPR:
 * processing stops from the objection unless compelling grounds are shown):
 * while one is undecided, sign-ins are recorded as for an upheld one. One row
 * per request, so deciding one of two leaves the other standing; a decided
 * row stays, so an objection event redelivered after its decision cannot
 * pause the audit again.
 */
export class PendingObjections1765600000000 implements MigrationInterface {
  name = 'PendingObjections1765600000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE objections (
        request_id uuid PRIMARY KEY,
        user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_at timestamptz NOT NULL DEFAULT now(),
        decided_at timestamptz
      )`);
    await q.query(`CREATE INDEX objections_undecided ON objections (user_id) WHERE decided_at IS NULL`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE objections`);
  }
}
