import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A request's creation time to the millisecond, which is what a page's cursor
 * holds: with Postgres's microseconds, requests of the same millisecond as a
 * page's last one could be skipped by the next page. Existing times move by
 * less than a millisecond.
 */
export class RequestTimesInMilliseconds1765400000000 implements MigrationInterface {
  name = 'RequestTimesInMilliseconds1765400000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE requests ALTER COLUMN created_at SET DEFAULT date_trunc('milliseconds', now())`);
    await q.query(`UPDATE requests SET created_at = date_trunc('milliseconds', created_at) WHERE created_at <> date_trunc('milliseconds', created_at)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE requests ALTER COLUMN created_at SET DEFAULT now()`);
  }
}
