import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { collectDefaultMetrics, Registry } from 'prom-client';
import type { NatsConnection } from '@nats-io/transport-node';
import { DataSource } from 'typeorm';
import { serviceInboxPrefix } from '@ally/contracts';
import { connectNats, drainNats, ensureStreams, OutboxRelay, RpcClient, RpcServer } from '@ally/messaging';
import { createServiceDataSource, migrateService } from '@ally/persistence';
import { baseConfigSchema, databaseConfigSchema, loadConfig, StartupError } from './config.js';
import { createLogger, PinoNestLogger } from './logger.js';
import type { PlatformContext } from './platform.module.js';
import type { ServiceDefinition } from './service-definition.js';

export interface RunningService {
  name: string;
  app: NestFastifyApplication;
  /** Base URL of its HTTP port, e.g. http://127.0.0.1:39211 */
  url: string;
  ctx: PlatformContext;
  close(): Promise<void>;
}

type Env = Record<string, string | undefined>;

async function connectNatsOrExplain(config: Record<string, any>, name: string): Promise<NatsConnection> {
  try {
    return await connectNats({
      url: config.NATS_URL,
      name: `${name}-${process.pid}`,
      user: config.NATS_USER,
      password: config.NATS_PASSWORD,
      credsFile: config.NATS_CREDS,
      inboxPrefix: serviceInboxPrefix(name),
    });
  } catch (err) {
    throw new StartupError(
      `NATS is not reachable at ${config.NATS_URL} (${(err as Error).message}): start it with \`nats-server -js\` or set NATS_URL`,
    );
  }
}

async function openDatabaseOrExplain(def: ServiceDefinition, config: Record<string, any>): Promise<DataSource> {
  const db = def.database!;
  const ds = createServiceDataSource({
    url: config.DATABASE_URL,
    schema: db.schema,
    entities: db.entities,
    migrations: db.migrations,
    poolSize: config.DATABASE_POOL_SIZE,
    applicationName: `ally-${def.name}`,
  });
  const where = new URL(config.DATABASE_URL);
  try {
    await ds.initialize();
  } catch (err) {
    throw new StartupError(
      `Postgres is not reachable at ${where.host}${where.pathname} as ${where.username} (${(err as Error).message}): start it (pg_ctlcluster 15 main start), check DATABASE_URL and run \`node services/${def.name}/dist/main.js migrate\``,
    );
  }
  if (await ds.showMigrations()) {
    await ds.destroy();
    throw new StartupError(`The ${def.name} schema has pending migrations: run \`node services/${def.name}/dist/main.js migrate\``);
  }
  return ds;
}

/** A service's modules, built but not serving: what a one-off command runs against. */
export interface BuiltService<C extends Record<string, unknown> = Record<string, unknown>> {
  name: string;
  app: NestFastifyApplication;
  ctx: PlatformContext & { config: C };
  close(): Promise<void>;
  /** Closes the connections alone (NATS, the pool), for an owner that closed `app` itself. */
  release(): Promise<void>;
}

/**
 * Builds one service: config, NATS, DB, streams and its Nest modules, without
 * HTTP, RPC handlers, the outbox relay or the lifecycle hooks that start event
 * consumers and background workers. A one-off command runs on this, so it never
 * acts as one more replica of the running service (its outbox rows are
 * published by the running service's relay).
 */
export async function buildService<C extends Record<string, unknown>>(def: ServiceDefinition<C>, env: Env, logsTo: 'stdout' | 'stderr' = 'stdout'): Promise<BuiltService<C>> {
  const config = loadConfig(def.configSchema, env) as C & Record<string, any>;
  const logger = createLogger(def.name, config.LOG_LEVEL, logsTo);
  const nats = await connectNatsOrExplain(config, def.name);
  let dataSource: DataSource | undefined;
  try {
    // NATS first, whole (with JetStream), then Postgres: each missing piece named on its own.
    await ensureStreams(nats, { prefix: config.NATS_SUBJECT_PREFIX, replicas: config.NATS_STREAM_REPLICAS }).catch((err) => {
      if (/jetstream (is )?not enabled/i.test(String((err as Error)?.message))) {
        throw new StartupError(`NATS at ${config.NATS_URL} runs without JetStream: start nats-server with -js`);
      }
      throw err;
    });
    dataSource = def.database ? await openDatabaseOrExplain(def, config) : undefined;
  } catch (err) {
    await nats.close();
    throw err;
  }
  const registry = new Registry();
  registry.setDefaultLabels({ service: def.name });
  // The event-loop lag histogram samples on a timer: every 10 ms by default, a wake-up of an idle service 100 times a second.
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 100 });
  const rpc = new RpcClient(nats, config.NATS_SUBJECT_PREFIX, config.RPC_TIMEOUT_MS);
  await rpc.connect();
  const ctx: PlatformContext & { config: C } = { config, env, logger, nats, rpc, registry, dataSource };
  const release = async () => {
    await rpc.close().catch(() => undefined);
    await drainNats(nats).catch(() => undefined);
    await dataSource?.destroy().catch(() => undefined);
  };
  let app: NestFastifyApplication;
  try {
    const adapter = new FastifyAdapter({ trustProxy: true, ...(def.fastifyOptions?.(config) ?? {}) });
    app = await NestFactory.create<NestFastifyApplication>(def.module(ctx), adapter, {
      logger: new PinoNestLogger(logger),
      rawBody: true,
      abortOnError: false,
    });
  } catch (err) {
    // A module that refuses to be built (a bad config file, say) leaves no connection behind.
    await release();
    throw err;
  }
  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      await app.close();
      await release();
    })());
  return { name: def.name, app, ctx, close, release };
}

/**
 * Starts one service: `buildService`, then the lifecycle hooks (event consumers, workers, what they load), its
 * RPC handlers, HTTP (health, metrics, API) and the outbox relay.
 */
export async function startService<C extends Record<string, unknown>>(def: ServiceDefinition<C>, env: Env): Promise<RunningService> {
  const built = await buildService(def, env);
  const { app, ctx } = built;
  const { logger, nats, dataSource, registry } = ctx;
  const config = ctx.config as C & Record<string, any>;
  const server = new RpcServer({ connection: nats, prefix: config.NATS_SUBJECT_PREFIX, queue: def.name });
  const port = Number(config[def.portVariable ?? 'HTTP_PORT'] ?? 0);
  const relay = dataSource
    ? new OutboxRelay({ dataSource, databaseUrl: config.DATABASE_URL, schema: def.database!.schema, nats, prefix: config.NATS_SUBJECT_PREFIX, logger, registry, settleMs: def.database!.outboxSettleMs, secrets: def.database!.outboxSecrets })
    : undefined;
  try {
    app.connectMicroservice({ strategy: server }, { inheritAppConfig: true });
    await def.configureHttp?.(app, ctx);
    // The lifecycle hooks first (a replica's quarantine list, quota view, signing keys are loaded there): the RPC
    // handlers answer from the moment they subscribe, and a hybrid app's connected microservice leaves the hooks
    // to the app's own init.
    await app.init();
    await app.startAllMicroservices();
    await app.listen(port, config.HTTP_HOST);
    await relay?.start();
  } catch (err) {
    // An onModuleInit that threw, a port taken, a LISTEN refused: nothing is left behind.
    await built.close().catch(() => undefined);
    throw err;
  }
  const address = app.getHttpServer().address();
  const boundPort = typeof address === 'object' && address ? address.port : port;
  logger.info({ port: boundPort, prefix: config.NATS_SUBJECT_PREFIX || undefined }, `${def.name} started`);

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      // Stop taking new work; the hooks (answers, consumers, workers) wind down theirs; requests taken are
      // answered (within the grace, less a second for the rest); the outbox's last rows go out; then NATS and the pool are drained.
      const deadline = Date.now() + Number(config.SHUTDOWN_GRACE_MS ?? 10_000) - 1_000;
      await server.close();
      await app.close();
      await server.settled(deadline);
      // After the requests and hooks that may still write events (an answer saved with its usage, say).
      await relay?.stop(deadline + 500);
      await built.release();
      logger.info(`${def.name} stopped`);
    })());
  return { name: def.name, app, url: `http://127.0.0.1:${boundPort}`, ctx, close };
}

/**
 * Runs the `migrate` command for a service. It reads the database settings
 * only: a migration needs no model catalog, plans or vendor keys, and an
 * operator's one-shot migrate step (compose, a k8s init container) should not
 * have to carry them.
 */
export async function migrate(def: ServiceDefinition, env: Env): Promise<string[]> {
  if (!def.database) return [];
  const config = loadConfig(baseConfigSchema.extend(databaseConfigSchema.shape), env);
  try {
    return await migrateService({
      url: config.DATABASE_URL,
      adminUrl: config.DATABASE_ADMIN_URL,
      schema: def.database.schema,
      entities: def.database.entities,
      migrations: def.database.migrations,
    });
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ECONNREFUSED' || code === '3D000' || code === '28000') {
      throw new StartupError(`Postgres refused the migration for ${def.name} (${(err as Error).message}): start it (pg_ctlcluster 15 main start) and check DATABASE_URL / DATABASE_ADMIN_URL`);
    }
    throw err;
  }
}

/**
 * The entry point of every service's `main.ts`:
 * `main.js` starts it, `main.js migrate` migrates, `main.js <command>` runs one of its commands.
 */
export async function main(def: ServiceDefinition<any>, argv = process.argv.slice(2), env: Env = process.env): Promise<void> {
  const [command, ...args] = argv;
  try {
    const known = `migrate${Object.keys(def.commands ?? {}).map((c) => `, ${c}`).join('')}`;
    if (command === 'help' || command === '--help' || command === '-h') {
      console.log(`usage: node services/${def.name}/dist/main.js [command]: without one it starts ${def.name}; commands: ${known}`);
      return;
    }
    if (command === 'migrate') {
      const ran = await migrate(def, env);
      console.log(!def.database ? `${def.name}: keeps no database, nothing to migrate` : ran.length ? `${def.name}: applied ${ran.join(', ')}` : `${def.name}: schema up to date`);
      return;
    }
    if (command) {
      const run = def.commands?.[command];
      if (!run) throw new StartupError(`Unknown command "${command}"; known: ${known}`);
      // Its logs on stderr: stdout is the command's answer (`export-invoices … > invoices.csv`).
      const service = await buildService(def, { ...env, LOG_LEVEL: env.LOG_LEVEL ?? 'warn' }, 'stderr');
      try {
        const out = await run(service.app, args);
        process.stdout.write(out.endsWith('\n') ? out : `${out}\n`);
      } catch (err) {
        // The command's own refusal (bad arguments, nothing found), not a failure to start.
        console.error(`${def.name} ${command}: ${(err as Error).message ?? err}`);
        process.exitCode = 1;
      } finally {
        await service.close();
      }
      return;
    }
    const service = await startService(def, env);
    let stopping = false;
    const stop = (signal: string) => {
      // A second signal (a process group's, then its parent's) changes nothing: the first one's shutdown goes on.
      if (stopping) return;
      stopping = true;
      service.ctx.logger.info({ signal }, 'shutting down');
      const grace = Number((service.ctx.config as { SHUTDOWN_GRACE_MS?: number }).SHUTDOWN_GRACE_MS ?? 10_000);
      setTimeout(() => process.exit(1), grace).unref();
      service.close().then(
        () => process.exit(0),
        (err) => {
          service.ctx.logger.error({ err: String(err) }, 'shutting down failed');
          process.exit(1);
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  } catch (err) {
    if (err instanceof StartupError) {
      console.error(`${def.name}: ${err.message}`);
    } else {
      console.error(`${def.name}: failed to start: ${(err as Error).message ?? err}`);
    }
    process.exit(1);
  }
}
