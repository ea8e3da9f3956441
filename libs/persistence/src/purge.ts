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
 * Deletes expired rows in small batches (`SKIP LOCKED`), so a retention pass
 * never holds long locks on a live table. Returns the count per rule.
 */
export async function purgeExpired(ds: DataSource, rules: readonly PurgeRule[], batch = 1000): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const { name, table, key = 'id', expired } of rules) {
    let total = 0;
    for (;;) {
      const [, affected] = await ds.query(
        `DELETE FROM ${table} WHERE ${key} IN (SELECT ${key} FROM ${table} WHERE ${expired} LIMIT ${batch} FOR UPDATE SKIP LOCKED)`,
      );
      total += Number(affected ?? 0);
      if (!affected || affected < batch) break;
    }
    counts[name] = total;
  }
  return counts;
}
