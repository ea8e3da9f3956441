import type { QueryRunner } from 'typeorm';

/**
 * Builds an index beside live writes (CONCURRENTLY, so its migration runs
 * outside a transaction: `transaction = false`). A build that was interrupted
 * leaves an invalid index under the name, which `IF NOT EXISTS` alone would
 * take as done: that one is dropped and built again.
 */
export async function createIndexConcurrently(q: QueryRunner, name: string, on: string): Promise<void> {
  const [invalid] = await q.query(
    `SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = $1 AND c.relnamespace = current_schema()::regnamespace AND NOT i.indisvalid`,
    [name],
  );
  if (invalid) await q.query(`DROP INDEX CONCURRENTLY ${name}`);
  await q.query(`CREATE INDEX CONCURRENTLY IF NOT EXISTS ${name} ON ${on}`);
}
