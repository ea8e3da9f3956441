import type { QueryRunner } from 'typeorm';

/**
 * For a migration: organisation ids written in capitals before they were
 * lower-cased at the boundary (workspaces, scopes), in lower case, so they meet
 * the rows written since. In a column that is (part of) a key (`keyed`), a row
 * whose lower-case twin already exists is left as it is: merging two rows'
 * meaning is not a migration's guess.
 */
export async function lowerCaseIds(q: QueryRunner, columns: [table: string, column: string, keyed?: 'keyed'][]): Promise<void> {
  for (const [table, column, keyed] of columns) {
    await q.query(
      `UPDATE ${table} t SET ${column} = lower(t.${column})
       WHERE t.${column} <> lower(t.${column}) AND t.${column} ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
         ${keyed ? `AND NOT EXISTS (SELECT 1 FROM ${table} d WHERE d.${column} = lower(t.${column}))` : ''}`,
    );
  }
}
