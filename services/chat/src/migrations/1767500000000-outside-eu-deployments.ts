import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Deployments configured as EU that reported a region outside the EU: kept
 * from EU-only callers by every chat replica, also one started afterwards,
 * until a probe without personal data finds them in the EU again.
 */
export class OutsideEuDeployments1767500000000 implements MigrationInterface {
  name = 'OutsideEuDeployments1767500000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE outside_eu_deployments (
      deployment_id text PRIMARY KEY,
      reported_region text NOT NULL,
      reported_at timestamptz NOT NULL DEFAULT now(),
      checked_at timestamptz
    )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE outside_eu_deployments`);
  }
}
