import type { DataSource } from 'typeorm';

export interface PurgeRule {
  /** The data category or table role, as reported. */
  name: string;
  table: string;
  /** Primary key column (default `id`). */
  key?: string;
  /** SQL condition for rows past their retention. */
  expired: string;
}

/**
 * Deletes the rows of `table` meeting `where` in small batches (`SKIP LOCKED`), so a retention pass never holds
 * long locks on a live table; a dry run only counts them. No batch is started after `stopBy` (ms): `complete` says
 * whether everything due went.
 */
export async function deleteInBatches(
  ds: Pick<DataSource, 'query'>,
  opts: { table: string; key?: string; where: string; params?: unknown[]; batch?: number; stopBy?: number; dryRun?: boolean },
): Promise<{ affected: number; complete: boolean }> {
  const { table, key = 'id', where, params = [], batch = 1000, stopBy = Infinity, dryRun = false } = opts;
  if (dryRun) {
    const [{ n }] = await ds.query(`SELECT count(*)::int AS n FROM ${table} WHERE ${where}`, params);
    return { affected: n, complete: true };
  }
  let affected = 0;
  for (;;) {
    if (Date.now() >= stopBy) return { affected, complete: false };
    const [, n] = await ds.query(`DELETE FROM ${table} WHERE ${key} IN (SELECT ${key} FROM ${table} WHERE ${where} LIMIT ${batch} FOR UPDATE SKIP LOCKED)`, params);
    affected += Number(n ?? 0);
    if (!n || n < batch) return { affected, complete: true };
  }
}

/** Deletes expired rows of each rule (`deleteInBatches`). Returns the count per rule. */
export async function purgeExpired(ds: DataSource, rules: readonly PurgeRule[], batch = 1000): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const { name, table, key, expired } of rules) counts[name] = (await deleteInBatches(ds, { table, key, where: expired, batch })).affected;
  return counts;
}
