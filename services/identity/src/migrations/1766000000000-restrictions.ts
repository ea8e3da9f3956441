import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Restrictions of processing of the whole account (Art. 18 GDPR) as identity
 * heard of them: while one is not lifted, sign-ins are not tied to the
 * subject in the login audit (the data is only stored, not added to). One row
 * per request, so lifting one of two leaves the other standing.
 */
export class Restrictions1766000000000 implements MigrationInterface {
  name = 'Restrictions1766000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE restrictions (
        request_id uuid PRIMARY KEY,
        user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_at timestamptz NOT NULL DEFAULT now(),
        lifted_at timestamptz
      )`);
    await q.query(`CREATE INDEX restrictions_standing ON restrictions (user_id) WHERE lifted_at IS NULL`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE restrictions`);
  }
}
