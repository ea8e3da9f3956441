import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Restrictions of processing (Art. 18 GDPR) as notify heard of them: while one
 * stands, no mail the subject may do without (welcome, billing news) goes to
 * them about its scope; those they asked for or the law requires still do.
 */
export class Restrictions1766000000000 implements MigrationInterface {
  name = 'Restrictions1766000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE restrictions (
        request_id uuid PRIMARY KEY,
        user_id uuid NOT NULL,
        scope text NOT NULL,
        lifted_at timestamptz
      )`);
    await q.query(`CREATE INDEX restrictions_standing ON restrictions (user_id) WHERE lifted_at IS NULL`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE restrictions`);
  }
}
