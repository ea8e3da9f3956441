import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Subjects whose account billing erased, by pseudonym: nothing new is set up for them while the erasure finishes elsewhere. */
export class ErasedSubjects1765700000000 implements MigrationInterface {
  name = 'ErasedSubjects1765700000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE erased_subjects (alias text PRIMARY KEY, erased_at timestamptz NOT NULL DEFAULT now())`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE erased_subjects`);
  }
}
