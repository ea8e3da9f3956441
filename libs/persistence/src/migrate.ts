import type { EntitySchema, MigrationInterface } from 'typeorm';
import { createServiceDataSource } from './data-source.js';
import { provisionServiceSchema } from './provision.js';

export interface MigrateOptions {
  url: string;
  adminUrl?: string;
  schema: string;
  entities: (Function | EntitySchema)[];
  migrations: (new () => MigrationInterface)[];
}

/** The `migrate` command: provision role and schema (when an admin URL is given), then run pending migrations as the service role. */
export async function migrateService(opts: MigrateOptions): Promise<string[]> {
  if (opts.adminUrl) await provisionServiceSchema({ adminUrl: opts.adminUrl, schema: opts.schema, serviceUrl: opts.url });
  // Two connections: one holds the lock, the migrations run on the other.
  const ds = createServiceDataSource({ url: opts.url, schema: opts.schema, entities: opts.entities, migrations: opts.migrations, poolSize: 2 });
  await ds.initialize();
  const lock = ds.createQueryRunner();
  try {
    // One migrating pod at a time (a release rolled at once starts them together): the others wait, then find
    // nothing pending, instead of failing on the same change or rebuilding an index another has just built.
    // Asked again and again rather than waited for in one statement: a statement waiting keeps a snapshot open,
    // and the holder's CREATE INDEX CONCURRENTLY waits for every such snapshot to end (each would wait for the other).
    await lock.connect();
    while (!(await lock.query(`SELECT pg_try_advisory_lock(hashtext($1)) AS got`, [`ally-migrate:${opts.schema}`]))[0].got) {
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    const ran = await ds.runMigrations({ transaction: 'each' });
    return ran.map((m) => m.name);
  } finally {
    await lock.query(`SELECT pg_advisory_unlock_all()`).catch(() => undefined);
    await lock.release().catch(() => undefined);
    await ds.destroy();
  }
}
