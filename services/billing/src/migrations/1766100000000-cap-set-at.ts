import type { MigrationInterface, QueryRunner } from 'typeorm';

/** When a spend cap was set: a member's removal that arrives late takes only a cap set before it, not one set after they rejoined. */
export class CapSetAt1766100000000 implements MigrationInterface {
  name = 'CapSetAt1766100000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE caps ADD COLUMN set_at timestamptz NOT NULL DEFAULT now()`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE caps DROP COLUMN set_at`);
  }
}
