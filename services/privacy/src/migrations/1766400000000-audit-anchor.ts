import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The audit trail's entries past their retention go oldest first; the last
 * deleted entry's seq and hash stay as the anchor the remaining chain is
 * verified from (one row).
 */
export class AuditAnchor1766400000000 implements MigrationInterface {
  name = 'AuditAnchor1766400000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE audit_anchor (one boolean PRIMARY KEY DEFAULT true CHECK (one), seq bigint NOT NULL, hash text NOT NULL, purged_at timestamptz NOT NULL DEFAULT now())`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE audit_anchor`);
  }
}
