import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { DataSource } from 'typeorm';
import { createTestEnv, type TestEnv } from '@ally/testing';
import { createIndexConcurrently, createServiceDataSource, provisionServiceSchema } from '@ally/persistence';

describe(createIndexConcurrently.name, () => {
  let env: TestEnv;
  let ds: DataSource;

  beforeAll(async () => {
    env = await createTestEnv();
    const url = env.serviceDbUrl('gamma');
    await provisionServiceSchema({ adminUrl: env.adminUrl, schema: 'gamma', serviceUrl: url });
    ds = createServiceDataSource({ url, schema: 'gamma', entities: [], poolSize: 1 });
    await ds.initialize();
    await ds.query(`CREATE TABLE visits (who text NOT NULL, at timestamptz NOT NULL DEFAULT now())`);
    await ds.query(`INSERT INTO visits (who) VALUES ('a'), ('a'), ('b')`);
  });

  afterAll(async () => {
    await ds?.destroy();
    await env?.close();
  });

  const validity = async (name: string) =>
    (await ds.query(`SELECT i.indisvalid AS valid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = $1`, [name]))[0]?.valid;

  it('builds the index, and again after a build that was interrupted left it invalid (IF NOT EXISTS alone would keep that one)', async () => {
    // A failed concurrent build (here: a unique index over duplicates) leaves an invalid index under the name.
    await expect(ds.query(`CREATE UNIQUE INDEX CONCURRENTLY visits_who_idx ON visits (who)`)).rejects.toThrow(/could not create unique index/);
    expect(await validity('visits_who_idx')).toBe(false);
    const runner = ds.createQueryRunner();
    try {
      await createIndexConcurrently(runner, 'visits_who_idx', 'visits (who, at)');
      await createIndexConcurrently(runner, 'visits_who_idx', 'visits (who, at)'); // a second run finds it built
    } finally {
      await runner.release();
    }
    expect(await validity('visits_who_idx')).toBe(true);
  });
});
