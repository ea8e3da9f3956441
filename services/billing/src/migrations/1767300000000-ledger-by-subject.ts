import type { MigrationInterface, QueryRunner } from 'typeorm';
import { createIndexConcurrently } from '@ally/persistence';

/**
 * A subject's ledger in its own order (time, then message id): an export reads
 * it a page at a time by keyset, and an erasure finds its rows; the index on
 * user_id alone made every page sort all of the subject's rows (a row per answer,
 * kept ten years). It serves what that one did, so that one goes.
 */
export class LedgerBySubject1767300000000 implements MigrationInterface {
  name = 'LedgerBySubject1767300000000';
  /** Built beside live bookings (CONCURRENTLY), which cannot be inside a transaction. */
  transaction = false;

  async up(q: QueryRunner): Promise<void> {
    await createIndexConcurrently(q, 'ledger_subject_idx', 'ledger (user_id, created_at, message_id)');
    await q.query(`DROP INDEX CONCURRENTLY IF EXISTS ledger_user_idx`);
  }

  async down(q: QueryRunner): Promise<void> {
    await createIndexConcurrently(q, 'ledger_user_idx', 'ledger (user_id)');
    await q.query(`DROP INDEX CONCURRENTLY IF EXISTS ledger_subject_idx`);
  }
}
