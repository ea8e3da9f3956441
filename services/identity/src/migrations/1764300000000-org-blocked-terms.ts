import type { MigrationInterface, QueryRunner } from 'typeorm';

export class OrgBlockedTerms1764300000000 implements MigrationInterface {
  name = 'OrgBlockedTerms1764300000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE organizations ADD COLUMN blocked_terms text[] NOT NULL DEFAULT '{}'`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE organizations DROP COLUMN blocked_terms`);
  }
}
