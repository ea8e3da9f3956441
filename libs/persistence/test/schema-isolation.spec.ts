import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import type { DataSource } from 'typeorm';
import { createTestEnv, type TestEnv } from '@ally/testing';
import { createServiceDataSource, provisionServiceSchema } from '@ally/persistence';

const PERMISSION_DENIED = '42501';
const UNDEFINED_TABLE = '42P01';

/** Runs `f` on a fresh connection as the given role and closes it. */
async function as<T>(url: string, f: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await f(c);
  } finally {
    await c.end();
  }
}

/** The Postgres error code of a failed query, or 'no error' when it succeeded. */
async function errorCode(run: () => Promise<unknown>): Promise<string> {
  try {
    await run();
    return 'no error';
  } catch (err) {
    const e = err as { code?: string; driverError?: { code?: string } };
    return e.driverError?.code ?? e.code ?? String(err);
  }
}

describe(provisionServiceSchema.name, () => {
  let env: TestEnv;
  let alphaUrl: string;
  let betaUrl: string;

  beforeAll(async () => {
    env = await createTestEnv();
    alphaUrl = env.serviceDbUrl('alpha');
    betaUrl = env.serviceDbUrl('beta');
    await provisionServiceSchema({ adminUrl: env.adminUrl, schema: 'alpha', serviceUrl: alphaUrl });
    await provisionServiceSchema({ adminUrl: env.adminUrl, schema: 'beta', serviceUrl: betaUrl });
    // Each service creates its table as the owner of its schema, the way its migrations do.
    await as(alphaUrl, async (c) => {
      await c.query(`CREATE TABLE alpha.notes (id int PRIMARY KEY, body text NOT NULL)`);
      await c.query(`INSERT INTO alpha.notes VALUES (1, 'alpha data')`);
    });
    await as(betaUrl, async (c) => {
      await c.query(`CREATE TABLE beta.secrets (id int PRIMARY KEY, body text NOT NULL)`);
      await c.query(`INSERT INTO beta.secrets VALUES (1, 'beta data')`);
    });
  });

  afterAll(async () => {
    await env?.close();
  });

  it('makes each service role the owner of its own schema and lets it use that schema unqualified', async () => {
    const owners = await env.sql<{ nspname: string; owner: string }>(
      `SELECT nspname, pg_get_userbyid(nspowner) AS owner FROM pg_namespace WHERE nspname IN ('alpha', 'beta') ORDER BY nspname`,
    );
    expect(owners).toEqual([
      { nspname: 'alpha', owner: env.roleOf('alpha') },
      { nspname: 'beta', owner: env.roleOf('beta') },
    ]);
    const rows = await as(alphaUrl, async (c) => (await c.query(`SELECT body FROM notes`)).rows);
    expect(rows).toEqual([{ body: 'alpha data' }]);
    const roles = await env.sql(`SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = $1`, [env.roleOf('alpha')]);
    expect(roles).toEqual([{ rolsuper: false, rolcreatedb: false, rolcreaterole: false }]);
  });

  it("refuses alpha reading beta's table with permission denied (42501)", async () => {
    await as(alphaUrl, async (c) => {
      expect(await errorCode(() => c.query(`SELECT * FROM beta.secrets`))).toBe(PERMISSION_DENIED);
      // Pointing the search path at beta does not help: without USAGE the schema is skipped.
      await c.query(`SET search_path = beta`);
      expect(await errorCode(() => c.query(`SELECT * FROM secrets`))).toBe(UNDEFINED_TABLE);
    });
    // And the other way round.
    await as(betaUrl, async (c) => {
      expect(await errorCode(() => c.query(`SELECT * FROM alpha.notes`))).toBe(PERMISSION_DENIED);
    });
  });

  it("refuses alpha writing into beta's schema (insert, create table)", async () => {
    await as(alphaUrl, async (c) => {
      expect(await errorCode(() => c.query(`INSERT INTO beta.secrets VALUES (2, 'forged')`))).toBe(PERMISSION_DENIED);
      expect(await errorCode(() => c.query(`CREATE TABLE beta.planted (id int)`))).toBe(PERMISSION_DENIED);
    });
    expect(await env.sql(`SELECT id FROM beta.secrets`)).toEqual([{ id: 1 }]);
  });

  it('refuses alpha creating tables in public or creating new schemas', async () => {
    await as(alphaUrl, async (c) => {
      expect(await errorCode(() => c.query(`CREATE TABLE public.sneaky (id int)`))).toBe(PERMISSION_DENIED);
      expect(await errorCode(() => c.query(`CREATE SCHEMA sneaky`))).toBe(PERMISSION_DENIED);
    });
    expect(await env.sql(`SELECT 1 FROM pg_tables WHERE tablename = 'sneaky'`)).toEqual([]);
  });

  it("refuses a service DataSource (search_path = its schema) reading another service's schema", async () => {
    const ds: DataSource = createServiceDataSource({ url: alphaUrl, schema: 'alpha', entities: [], poolSize: 1 });
    await ds.initialize();
    try {
      expect(await ds.query(`SELECT body FROM notes`)).toEqual([{ body: 'alpha data' }]);
      expect(await errorCode(() => ds.query(`SELECT * FROM beta.secrets`))).toBe(PERMISSION_DENIED);
    } finally {
      await ds.destroy();
    }
  });

  it('is idempotent: provisioning again keeps the data and the isolation', async () => {
    await provisionServiceSchema({ adminUrl: env.adminUrl, schema: 'alpha', serviceUrl: alphaUrl });
    await provisionServiceSchema({ adminUrl: env.adminUrl, schema: 'beta', serviceUrl: betaUrl });
    await as(alphaUrl, async (c) => {
      expect((await c.query(`SELECT body FROM alpha.notes`)).rows).toEqual([{ body: 'alpha data' }]);
      expect(await errorCode(() => c.query(`SELECT * FROM beta.secrets`))).toBe(PERMISSION_DENIED);
    });
  });
});
