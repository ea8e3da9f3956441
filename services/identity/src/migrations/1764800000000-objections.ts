import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Users whose objection to the login audit (Art. 21) compliance upheld. */
export class Objections1764800000000 implements MigrationInterface {
  name = 'Objections1764800000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE users ADD COLUMN login_audit_objected boolean NOT NULL DEFAULT false`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE users DROP COLUMN login_audit_objected`);
  }
}
