import type { Pool } from 'pg';
import { DataSource, type EntitySchema, type MigrationInterface } from 'typeorm';
import type { PostgresDriver } from 'typeorm/driver/postgres/PostgresDriver.js';

export interface ServiceDataSourceOptions {
  /** The service's own login role; it can touch only its schema. */
  url: string;
  schema: string;
  entities: (Function | EntitySchema)[];
  migrations?: (new () => MigrationInterface)[];
  poolSize?: number;
  applicationName?: string;
}

/** One DataSource per service schema; schemas change only through migrations. */
export function createServiceDataSource(opts: ServiceDataSourceOptions): DataSource {
  return new DataSource({
    type: 'postgres',
    url: opts.url,
    schema: opts.schema,
    entities: opts.entities,
    migrations: opts.migrations ?? [],
    migrationsTableName: 'migrations',
    migrationsTransactionMode: 'each',
    synchronize: false,
    logging: false,
    applicationName: opts.applicationName ?? `ally-${opts.schema}`,
    poolSize: opts.poolSize ?? 10,
    extra: {
      // Unqualified names resolve in the service's schema only.
      options: `-c search_path=${opts.schema}`,
      connectionTimeoutMillis: 5_000,
    },
  });
}

/**
 * A named statement on the DataSource's pool: Postgres parses and plans it
 * once per connection instead of on every call. For the few hot statements
 * whose text never changes; everything else goes through TypeORM.
 */
export async function queryPrepared<T>(ds: DataSource, name: string, text: string, values: unknown[]): Promise<T[]> {
  const pool = (ds.driver as PostgresDriver).master as Pool;
  const { rows } = await pool.query({ name, text, values });
  return rows as T[];
}
