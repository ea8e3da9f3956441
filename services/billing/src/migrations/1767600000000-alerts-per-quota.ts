import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * An alert remembers the quota it measured: the same level reached again in
 * the month under a higher quota (an upgrade, more seats) alerts again.
 * Alerts raised before this keep no quota and are not raised again this month.
 */
export class AlertsPerQuota1767600000000 implements MigrationInterface {
  name = 'AlertsPerQuota1767600000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE quota_alerts ADD COLUMN quota bigint`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE quota_alerts DROP COLUMN quota`);
  }
}
