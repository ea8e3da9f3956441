import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * An export that failed kept the parts it had collected, and their key, until
 * the request itself went years later (an erasure of the subject did not take
 * them either): now a failed export keeps nothing, those of before included.
 */
export class FailedExportsKeepNothing1766900000000 implements MigrationInterface {
  name = 'FailedExportsKeepNothing1766900000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`DELETE FROM export_parts WHERE request_id IN (SELECT id FROM requests WHERE status = 'failed')`);
    await q.query(`UPDATE requests SET wrapped_key = NULL WHERE status = 'failed' AND type IN ('access', 'portability') AND wrapped_key IS NOT NULL`);
  }

  async down(): Promise<void> {
    // What was deleted stays deleted.
  }
}
