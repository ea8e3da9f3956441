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
  const ds = createServiceDataSource({ url: opts.url, schema: opts.schema, entities: opts.entities, migrations: opts.migrations, poolSize: 1 });
  await ds.initialize();
  try {
    const ran = await ds.runMigrations({ transaction: 'each' });
    return ran.map((m) => m.name);
  } finally {
    await ds.destroy();
  }
}
