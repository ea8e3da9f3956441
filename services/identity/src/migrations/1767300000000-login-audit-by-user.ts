import type { MigrationInterface, QueryRunner } from 'typeorm';
import { createIndexConcurrently } from '@ally/persistence';

/**
 * A user's sign-ins in the audit's order (time, then id): an export reads them
 * a page at a time by keyset, and the "known place" check and an erasure find
 * them, where before each read went through the whole audit. Sessions likewise
 * in their export's order.
 */
export class LoginAuditByUser1767300000000 implements MigrationInterface {
  name = 'LoginAuditByUser1767300000000';
  /** Built beside sign-ins (CONCURRENTLY), which cannot be inside a transaction. */
  transaction = false;

  async up(q: QueryRunner): Promise<void> {
    await createIndexConcurrently(q, 'login_audit_user_idx', 'login_audit (user_id, occurred_at, id)');
    await createIndexConcurrently(q, 'sessions_user_time_idx', 'sessions (user_id, created_at, id)');
    await q.query(`DROP INDEX CONCURRENTLY IF EXISTS sessions_user_idx`);
  }

  async down(q: QueryRunner): Promise<void> {
    await createIndexConcurrently(q, 'sessions_user_idx', 'sessions (user_id)');
    await q.query(`DROP INDEX CONCURRENTLY IF EXISTS sessions_user_time_idx`);
    await q.query(`DROP INDEX CONCURRENTLY IF EXISTS login_audit_user_idx`);
  }
}
