import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * What the slices of an erasure step deleted so far (counts and processors
 * told), kept with the step: a step another worker takes up, or a later
 * attempt, reports the whole erasure, not only its own part.
 */
export class ErasureProgress1767400000000 implements MigrationInterface {
  name = 'ErasureProgress1767400000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE request_steps ADD COLUMN progress jsonb`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE request_steps DROP COLUMN progress`);
  }
}
