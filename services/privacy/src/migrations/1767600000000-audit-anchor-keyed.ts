import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Whether the last purged entry of the audit trail was keyed (PRIVACY_AUDIT_KEY): a trail purged whole goes on
 * from its anchor the way that entry was written. Anchors of before were not.
 */
export class AuditAnchorKeyed1767600000000 implements MigrationInterface {
  name = 'AuditAnchorKeyed1767600000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE audit_anchor ADD COLUMN keyed boolean NOT NULL DEFAULT false`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE audit_anchor DROP COLUMN keyed`);
  }
}
