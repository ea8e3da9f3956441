import pg from 'pg';
import { randomBytes, randomUUID } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import { connectNats, deleteStreams } from '@ally/messaging';
import { migrate, startService, type RunningService, type ServiceDefinition } from '@ally/platform';

export interface TestEnvOptions {
  /** Defaults to the shared local server, or TEST_PG_URL / TEST_NATS_URL set by the test runner. */
  pgUrl?: string;
  natsUrl?: string;
}

/**
 * One isolated world per test file: its own database, its own service roles
 * and its own NATS subject prefix (hence its own JetStream stream), against
 * the real local Postgres and NATS. `close()` leaves nothing behind.
 */
export class TestEnv {
  readonly runId = `t${randomBytes(5).toString('hex')}`;
  readonly prefix = this.runId;
  readonly database = `ally_${this.runId}`;
  private readonly running: RunningService[] = [];
  private natsConn?: NatsConnection;

  constructor(private readonly opts: TestEnvOptions = {}) {}

  get pgUrl(): string {
    return this.opts.pgUrl ?? process.env.TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  }

  get natsUrl(): string {
    return this.opts.natsUrl ?? process.env.TEST_NATS_URL ?? 'nats://127.0.0.1:4222';
  }

  /** The superuser URL of this run's database (for provisioning and assertions). */
  get adminUrl(): string {
    const u = new URL(this.pgUrl);
    u.pathname = `/${this.database}`;
    return u.href;
  }

  /** The service's own least-privilege login for this run. */
  roleOf(service: string): string {
    return `${this.runId}_${service}`;
  }

  serviceDbUrl(service: string): string {
    const u = new URL(this.adminUrl);
    u.username = this.roleOf(service);
    u.password = '';
    return u.href;
  }

  async setup(): Promise<this> {
    await this.admin((c) => c.query(`CREATE DATABASE "${this.database}"`), this.pgUrl);
    return this;
  }

  /** The environment a service would get in production, pointed at this run. */
  envFor(def: ServiceDefinition<any>, overrides: Record<string, string> = {}): Record<string, string> {
    return {
      NODE_ENV: 'test',
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'error',
      HTTP_HOST: '127.0.0.1',
      HTTP_PORT: '0',
      GATEWAY_PORT: '0',
      NATS_URL: this.natsUrl,
      NATS_SUBJECT_PREFIX: this.prefix,
      // Tests start retention runs themselves (privacy's own schedule would purge their fixtures at a random moment).
      RETENTION_SCHEDULE_HOURS: '0',
      // Each gateway a test starts counts its rate limits alone (its own limits), unless the test makes replicas of one group.
      RATE_LIMIT_GROUP: `test-${randomUUID()}`,
      ...(def.database ? { DATABASE_URL: this.serviceDbUrl(def.name), DATABASE_ADMIN_URL: this.adminUrl } : {}),
      ...overrides,
    };
  }

  async migrate(def: ServiceDefinition<any>, overrides: Record<string, string> = {}): Promise<void> {
    await migrate(def, this.envFor(def, overrides));
  }

  /** Migrates (if it has a schema) and starts a service in this process. */
  async start(def: ServiceDefinition<any>, overrides: Record<string, string> = {}): Promise<RunningService> {
    await this.migrate(def, overrides);
    const service = await startService(def, this.envFor(def, overrides));
    this.running.push(service);
    return service;
  }

  async stop(service: RunningService): Promise<void> {
    await service.close();
    this.running.splice(this.running.indexOf(service), 1);
  }

  /** A NATS connection for assertions (subscribe to this run's subjects). */
  async nats(): Promise<NatsConnection> {
    return (this.natsConn ??= await connectNats({ url: this.natsUrl, name: `test-${this.runId}` }));
  }

  subject(s: string): string {
    return `${this.prefix}.${s}`;
  }

  /** Runs SQL as the superuser in this run's database. */
  async sql<T = any>(text: string, params: unknown[] = []): Promise<T[]> {
    return this.admin(async (c) => (await c.query(text, params)).rows as T[]);
  }

  /** A connection of its own as the superuser in this run's database (to hold a lock, say); the caller ends it. */
  async connect(): Promise<pg.Client> {
    const c = new pg.Client({ connectionString: this.adminUrl });
    await c.connect();
    return c;
  }

  async close(): Promise<void> {
    for (const s of [...this.running].reverse()) await s.close().catch(() => undefined);
    this.running.length = 0;
    const nc = await this.nats().catch(() => undefined);
    if (nc) {
      await deleteStreams(nc, this.prefix);
      await nc.close();
    }
    await this.admin(async (c) => {
      await c.query(`DROP DATABASE IF EXISTS "${this.database}" WITH (FORCE)`);
      const roles = await c.query(`SELECT rolname FROM pg_roles WHERE rolname LIKE $1`, [`${this.runId}\\_%`]);
      for (const r of roles.rows) await c.query(`DROP ROLE IF EXISTS "${r.rolname}"`);
    }, this.pgUrl);
  }

  private async admin<T>(f: (c: pg.Client) => Promise<T>, url = this.adminUrl): Promise<T> {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      return await f(c);
    } finally {
      await c.end();
    }
  }
}

export async function createTestEnv(opts?: TestEnvOptions): Promise<TestEnv> {
  return new TestEnv(opts).setup();
}
