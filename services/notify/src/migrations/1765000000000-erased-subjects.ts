import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Subjects whose account was erased, by a hash of their id (no id is kept):
 * an event about them still in the stream then makes no mail.
 */
export class ErasedSubjects1765000000000 implements MigrationInterface {
  name = 'ErasedSubjects1765000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE erased_subjects (
        mark text PRIMARY KEY,
        erased_at timestamptz NOT NULL DEFAULT now()
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE erased_subjects`);
  }
}
