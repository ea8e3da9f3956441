import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The audit trail's anchor of a keyed trail carries an HMAC of its seq and hash under PRIVACY_AUDIT_KEY: only the
 * key's holder moves where a keyed trail starts. Anchors of before have none (their trail was not keyed).
 */
export class AuditAnchorKeyed1767600000000 implements MigrationInterface {
  name = 'AuditAnchorKeyed1767600000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE audit_anchor ADD COLUMN mac text`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE audit_anchor DROP COLUMN mac`);
  }
}
