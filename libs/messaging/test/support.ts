import type { DataSource, MigrationInterface, QueryRunner } from 'typeorm';
import { pino, type Logger } from 'pino';
import { z } from 'zod';
import type { Registry } from 'prom-client';
import { createMessagingTables, dropMessagingTables } from '@ally/messaging';
import { createServiceDataSource, migrateService } from '@ally/persistence';
import type { TestEnv } from '@ally/testing';

/** Event contracts used only by the messaging tests. */
export const TestEvents = {
  'test.thing.happened': z.object({ n: z.number().int() }),
  'test.thing.failed': z.object({ n: z.number().int() }),
  'test.other.happened': z.object({ n: z.number().int() }),
  'test.load.happened': z.object({ n: z.number().int() }),
  'test.widened.happened': z.object({ n: z.number().int() }),
};

/**
 * A test-only migration: the outbox and inbox a service's first migration
 * creates, plus an `effects` table a consumer writes into. `effects` has no
 * unique key on purpose, so only the inbox can stop a second effect.
 */
export function testMigration(schema: string): new () => MigrationInterface {
  return class TestMessagingSchema1700000000000 implements MigrationInterface {
    name = 'TestMessagingSchema1700000000000';

    async up(q: QueryRunner): Promise<void> {
      await createMessagingTables(q, schema);
      await q.query(`CREATE TABLE effects (id bigserial PRIMARY KEY, event_id uuid NOT NULL, consumer text NOT NULL, n int)`);
    }

    async down(q: QueryRunner): Promise<void> {
      await q.query(`DROP TABLE effects`);
      await dropMessagingTables(q);
    }
  };
}

/** Provisions `schema` with its own role in the test database, migrates it and opens its DataSource. */
export async function openTestSchema(env: TestEnv, schema: string): Promise<{ dataSource: DataSource; url: string }> {
  const url = env.serviceDbUrl(schema);
  await migrateService({ url, adminUrl: env.adminUrl, schema, entities: [], migrations: [testMigration(schema)] });
  const dataSource = createServiceDataSource({ url, schema, entities: [], poolSize: 4 });
  await dataSource.initialize();
  return { dataSource, url };
}

export const silentLogger = (): Logger => pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

export async function metricValue(registry: Registry, name: string): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return 0;
  const { values } = await metric.get();
  return values.reduce((sum, v) => sum + v.value, 0);
}
