import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Subjects who asked for restriction of processing (Art. 18), from privacy's events. */
export class Restrictions1764700000000 implements MigrationInterface {
  name = 'Restrictions1764700000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE restrictions (
        user_id uuid NOT NULL,
        -- 'all', 'private' or an organisation id
        scope text NOT NULL,
        request_id uuid NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (user_id, scope)
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE restrictions`);
  }
}
