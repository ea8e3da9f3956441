import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A lifted restriction keeps its row, marked: a lift that reaches one chat
 * replica while the other still applies the restriction no longer sees it
 * come back (the lift deleted a row the restriction then inserted).
 */
export class LiftedRestrictions1766200000000 implements MigrationInterface {
  name = 'LiftedRestrictions1766200000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE restrictions ADD COLUMN lifted_at timestamptz`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DELETE FROM restrictions WHERE lifted_at IS NOT NULL`);
    await q.query(`ALTER TABLE restrictions DROP COLUMN lifted_at`);
  }
}
