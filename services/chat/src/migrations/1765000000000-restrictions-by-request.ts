import type { MigrationInterface, QueryRunner } from 'typeorm';

/** One row per restriction request: lifting one leaves another of the same scope standing. */
export class RestrictionsByRequest1765000000000 implements MigrationInterface {
  name = 'RestrictionsByRequest1765000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE restrictions DROP CONSTRAINT restrictions_pkey`);
    await q.query(`ALTER TABLE restrictions ADD PRIMARY KEY (request_id)`);
    await q.query(`CREATE INDEX restrictions_user_idx ON restrictions (user_id, scope)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX restrictions_user_idx`);
    await q.query(`ALTER TABLE restrictions DROP CONSTRAINT restrictions_pkey`);
    await q.query(`DELETE FROM restrictions a USING restrictions b WHERE a.user_id = b.user_id AND a.scope = b.scope AND a.created_at < b.created_at`);
    await q.query(`ALTER TABLE restrictions ADD PRIMARY KEY (user_id, scope)`);
  }
}
