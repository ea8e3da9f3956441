import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Subjects whose account was erased, by a keyed hash of their id (no id is
 * kept): chat refuses them until their last access token has expired, so
 * nothing is written for them between chat's erasure step and identity's.
 */
export class ErasedSubjects1764900000000 implements MigrationInterface {
  name = 'ErasedSubjects1764900000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE erased_subjects (
        mark bytea PRIMARY KEY,
        erased_at timestamptz NOT NULL DEFAULT now()
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE erased_subjects`);
  }
}
