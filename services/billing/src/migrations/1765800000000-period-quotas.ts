import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The token quota each workspace had in a month, as the quota service last
 * saw it then: what `GET /v1/billing/usage?period=` of a past month shows
 * (plans and seats change; the quota of today is not that month's). A
 * private workspace's rows are under its owner's pseudonym (`erased-…`).
 */
export class PeriodQuotas1765800000000 implements MigrationInterface {
  name = 'PeriodQuotas1765800000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE period_quotas (
        workspace text NOT NULL,
        period text NOT NULL,
        token_quota bigint NOT NULL,
        PRIMARY KEY (workspace, period)
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE period_quotas`);
  }
}
