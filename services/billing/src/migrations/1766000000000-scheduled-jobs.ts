import type { MigrationInterface, QueryRunner } from 'typeorm';

/** When each periodic job last started, so that of all replicas one runs it per period (`claimDue`). */
export class ScheduledJobs1766000000000 implements MigrationInterface {
  name = 'ScheduledJobs1766000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE scheduled_jobs (name text PRIMARY KEY, last_started_at timestamptz NOT NULL)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE scheduled_jobs`);
  }
}
