// What every benchmark script needs around its measurements: child processes
// it owns (started, awaited, stopped in order), its own database, service roles
// and NATS prefix, and a cleanup that removes them on success, failure and signals.
import { execFileSync, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { SERVICE_NODE_FLAGS } from '../scripts/node-flags.mjs';

export const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const round = (n, digits = 2) => (Number.isFinite(n) ? Math.round(n * 10 ** digits) / 10 ** digits : null);
export const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

/** A JSON request; answers `{ status, body }` (the body as text when it is not JSON). */
export async function json(method, url, body, token) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = text;
  }
  return { status: res.status, body: parsed };
}

/** The commit measured, `+dirty` when services/ or libs/ had uncommitted changes. */
export function gitCommit() {
  try {
    const git = (...args) => execFileSync('git', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const sha = git('rev-parse', '--short', 'HEAD');
    const dirty = git('status', '--porcelain', '--', 'services', 'libs') !== '';
    return dirty ? `${sha}+dirty` : sha;
  } catch {
    return undefined;
  }
}

/** The machine a results file was measured on. */
export function machine() {
  return {
    nproc: os.availableParallelism?.() ?? os.cpus().length,
    cpu: os.cpus()[0]?.model,
    memoryGiB: round(os.totalmem() / 2 ** 30, 1),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
  };
}

/** The command line that produced a results file, for the record. */
export const commandLine = (script) => `node tools/bench/${script}${process.argv.length > 2 ? ` ${process.argv.slice(2).join(' ')}` : ''}`;

/**
 * @param {{ tag: string, prefix: string, database: string, pgAdmin: URL, natsUrl: string, verbose?: boolean,
 *           stopOrder?: string[], stopTimeoutMs?: number, natsConnection?: () => any }} opts
 *   `stopOrder`: child names stopped one after the other first (e.g. the gateway before what it calls);
 *   without it all children stop at once. `natsConnection`: a connection of the script's to reuse for cleanup.
 */
export function createBenchWorld(opts) {
  const children = new Set();
  const world = { children, databaseCreated: false, cleaning: undefined, prepare, start, runToEnd, waitReady, stopChild, admin, cleanup };

  /**
   * Builds (unless `noBuild`), creates the run's database, and answers what
   * the services' environments share: `common` (NODE_ENV=test, NATS and the
   * run's prefix, …) and `db(svc)`, the service's own role in that database
   * plus the admin URL its `migrate` provisions the role with.
   */
  async function prepare({ noBuild = false } = {}) {
    const log = (line) => console.log(`[${opts.tag}] ${line}`);
    if (!noBuild) {
      const { build } = await import('../scripts/build.mjs');
      const t0 = Date.now();
      const files = await build();
      log(`built ${files} files in ${Date.now() - t0} ms`);
    }
    log(`database ${opts.database}, NATS prefix ${opts.prefix}`);
    await admin((c) => c.query(`CREATE DATABASE "${opts.database}"`));
    world.databaseCreated = true;
    const adminUrl = new URL(opts.pgAdmin);
    adminUrl.pathname = `/${opts.database}`;
    const db = (svc) => {
      const u = new URL(adminUrl);
      u.username = `${opts.prefix}_${svc}`;
      return { DATABASE_URL: u.href, DATABASE_ADMIN_URL: adminUrl.href };
    };
    const common = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      ...(process.env.NODE_OPTIONS ? { NODE_OPTIONS: process.env.NODE_OPTIONS } : {}),
      // NODE_ENV=production needs real provider credentials; test is the closest we can run here.
      NODE_ENV: 'test',
      LOG_LEVEL: 'warn',
      HTTP_HOST: '127.0.0.1',
      NATS_URL: opts.natsUrl,
      NATS_SUBJECT_PREFIX: opts.prefix,
    };
    return { common, db };
  }

  async function stopChild(child) {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const stopped = await Promise.race([exited.then(() => true), sleep(opts.stopTimeoutMs ?? 10_000).then(() => false)]);
    if (!stopped) {
      child.kill('SIGKILL');
      await exited;
    }
  }

  async function admin(f, database = 'postgres') {
    const url = new URL(opts.pgAdmin);
    url.pathname = `/${database}`;
    const c = new pg.Client({ connectionString: url.href });
    await c.connect();
    try {
      return await f(c);
    } finally {
      await c.end();
    }
  }

  /** Idempotent; runs on success, failure and signals. */
  function cleanup() {
    return (world.cleaning ??= (async () => {
      if (opts.stopOrder) {
        const rank = (c) => (opts.stopOrder.includes(c.name) ? opts.stopOrder.indexOf(c.name) : opts.stopOrder.length);
        for (const c of [...children].sort((a, b) => rank(a) - rank(b))) await stopChild(c).catch(() => undefined);
      } else {
        await Promise.all([...children].map((c) => stopChild(c).catch(() => undefined)));
      }
      try {
        const { connectNats, deleteStreams } = await import('@ally/messaging');
        const own = opts.natsConnection?.();
        const nc = own && !own.isClosed() ? own : await connectNats({ url: opts.natsUrl, name: `${opts.tag}-cleanup-${process.pid}` });
        await deleteStreams(nc, opts.prefix);
        await nc.close();
      } catch (err) {
        console.error(`[${opts.tag}] cleanup: could not delete the JetStream streams of ${opts.prefix}: ${err.message}`);
      }
      try {
        await admin(async (c) => {
          if (world.databaseCreated) await c.query(`DROP DATABASE IF EXISTS "${opts.database}" WITH (FORCE)`);
          const roles = await c.query(`SELECT rolname FROM pg_roles WHERE rolname LIKE $1`, [`${opts.prefix.replace(/_/g, '\\_')}\\_%`]);
          for (const r of roles.rows) await c.query(`DROP ROLE IF EXISTS "${r.rolname}"`);
        });
      } catch (err) {
        console.error(`[${opts.tag}] cleanup: could not drop database ${opts.database} / roles ${opts.prefix}_*: ${err.message}`);
      }
    })());
  }

  /** Spawns a child we own; keeps the tail of its output for error messages. */
  function start(name, args, env, { stdin = 'ignore', expectExit = false } = {}) {
    const child = spawn(process.execPath, [...SERVICE_NODE_FLAGS, ...args], { cwd: root, env, stdio: [stdin, 'pipe', 'pipe'] });
    child.name = name;
    child.output = '';
    const keep = (chunk) => {
      child.output = (child.output + chunk).slice(-8_000);
      if (opts.verbose) process.stderr.write(chunk.replace(/^(?=.)/gm, `[${name}] `));
    };
    child.stdout.setEncoding('utf8').on('data', keep);
    child.stderr.setEncoding('utf8').on('data', keep);
    children.add(child);
    child.once('exit', (code, signal) => {
      if (!world.cleaning && !expectExit) console.error(`[${opts.tag}] ${name} exited unexpectedly (code ${code}, signal ${signal})\n${child.output.trim()}`);
    });
    return child;
  }

  /** Runs a child to completion (e.g. `main.js migrate`). */
  async function runToEnd(name, args, env) {
    const child = start(name, args, env, { expectExit: true });
    const code = await new Promise((r) => child.once('exit', (c) => r(c)));
    children.delete(child);
    if (code !== 0) throw new Error(`${name} failed (exit ${code}):\n${child.output.trim()}`);
    return child.output;
  }

  /** Waits until `url` answers below 500 (a health probe, or an endpoint that wants credentials). */
  async function waitReady(child, url, seconds = 30) {
    const deadline = Date.now() + seconds * 1000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`${child.name} exited during start-up:\n${child.output.trim()}`);
      const ok = await fetch(url).then((r) => r.status < 500, () => false);
      if (ok) return;
      await sleep(100);
    }
    throw new Error(`${child.name} was not ready at ${url} within ${seconds} s:\n${child.output.trim()}`);
  }

  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => {
      console.error(`\n[${opts.tag}] ${signal}: cleaning up`);
      cleanup().finally(() => process.exit(130));
    });
  }
  // Last resort if we die without cleaning up: leave no services behind.
  process.on('exit', () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  });
  return world;
}
