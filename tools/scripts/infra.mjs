// Postgres and NATS on localhost: check them, and (for tests) start or install them.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { connect } from 'node:net';
import { connect as connectNats } from '@nats-io/transport-node';
import pg from 'pg';

export const PG = { host: '127.0.0.1', port: 5432 };
export const NATS = { host: '127.0.0.1', port: 4222 };

export function reachable({ host, port }, timeoutMs = 1000) {
  return new Promise((resolve) => {
    const sock = connect(port, host);
    const done = (ok) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

async function waitReachable(target, seconds) {
  for (let i = 0; i < seconds * 4; i++) {
    if (await reachable(target)) return true;
    await new Promise((r) => setTimeout(r, 250));
  }
  return false;
}

/** Where `cmd` is on the PATH, or undefined. */
const which = (cmd) => {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
};
const has = (cmd) => which(cmd) !== undefined;
const systemd = () => existsSync('/run/systemd/system');
const isRoot = () => process.getuid?.() === 0;

function aptInstall(pkg) {
  console.log(`[infra] installing ${pkg} from Debian's packages`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  const r = spawnSync('apt-get', ['install', '-y', '-qq', pkg], { stdio: 'inherit', env });
  if (r.status !== 0) throw new Error(`apt-get install ${pkg} failed`);
}

export function postgresVersions() {
  return existsSync('/etc/postgresql') ? readdirSync('/etc/postgresql') : [];
}

/** Whether the tests' login (`postgres`, no password, over TCP) works. */
async function testsMayLogIn() {
  const client = new pg.Client({ host: PG.host, port: PG.port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 5_000 });
  try {
    await client.connect();
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

const TRUST_ADVICE = "PostgreSQL on 127.0.0.1:5432 refuses the tests' login (postgres without a password): trust 127.0.0.1/32 in its pg_hba.conf, or set TEST_PG_URL to a server that lets the tests in";

/**
 * Makes sure Postgres answers on 127.0.0.1:5432 and lets the tests' `postgres` in without a password. A server
 * this run installed or started is set to trust local connections; one that ran already is left as it is.
 */
export async function ensurePostgres() {
  if (process.env.TEST_PG_URL) return;
  if (await reachable(PG)) {
    if (await testsMayLogIn()) return;
    throw new Error(TRUST_ADVICE);
  }
  if (!has('pg_ctlcluster') || postgresVersions().length === 0) aptInstall('postgresql');
  for (const version of postgresVersions()) {
    console.log(`[infra] starting PostgreSQL ${version}`);
    spawnSync('pg_ctlcluster', ['--skip-systemctl-redirect', version, 'main', 'start'], { stdio: 'inherit' });
    if (await waitReachable(PG, 20)) break;
  }
  if (!(await reachable(PG))) throw new Error('PostgreSQL could not be started on 127.0.0.1:5432');
  if (await testsMayLogIn()) return;
  // A fresh Debian install asks for passwords on TCP; the tests' own server is trusted locally.
  for (const version of postgresVersions()) {
    const hba = `/etc/postgresql/${version}/main/pg_hba.conf`;
    console.log(`[infra] trusting local connections in ${hba}`);
    spawnSync('sh', ['-c', `sed -i -E 's/^(host\\s+all\\s+all\\s+127\\.0\\.0\\.1\\/32\\s+)\\S+/\\1trust/; s/^(local\\s+all\\s+all\\s+)\\S+/\\1trust/; s/^(local\\s+all\\s+postgres\\s+)\\S+/\\1trust/' ${hba}`]);
    spawnSync('pg_ctlcluster', ['--skip-systemctl-redirect', version, 'main', 'reload'], { stdio: 'inherit' });
  }
  await new Promise((r) => setTimeout(r, 500));
  if (!(await testsMayLogIn())) throw new Error(TRUST_ADVICE);
}

/** 'on', 'off' (a server without -js), or why NATS could not be asked; `open` connects to it. */
export async function jetStreamOf(open) {
  let nc;
  try {
    nc = await open();
    const reply = await nc.request('$JS.API.INFO', '', { timeout: 3_000 });
    return reply.json().error ? 'off' : 'on';
  } catch (err) {
    // No responders: nothing serves the JetStream API.
    return /no responders|503/i.test(String(err?.message ?? err)) || err?.code === '503' ? 'off' : String(err?.message ?? err);
  } finally {
    await nc?.close().catch(() => undefined);
  }
}

const localJetStream = () => jetStreamOf(() => connectNats({ servers: `${NATS.host}:${NATS.port}`, name: 'ally-test-preflight', timeout: 3_000 }));

/** Stops Debian's own nats-server service (its package starts it without JetStream, on our port) for good; whether it did. */
const stopDebianNats = () => isRoot() && systemd() && spawnSync('systemctl', ['disable', '--now', 'nats-server'], { stdio: 'inherit' }).status === 0;

/** Makes sure nats-server with JetStream answers on 127.0.0.1:4222. */
export async function ensureNats() {
  if (process.env.TEST_NATS_URL) return;
  if (await reachable(NATS)) {
    const jetstream = await localJetStream();
    if (jetstream === 'on') return;
    // Debian's own service (it comes back at boot) makes way for one with JetStream.
    const debianService = jetstream === 'off' && spawnSync('systemctl', ['is-active', '--quiet', 'nats-server']).status === 0;
    if (debianService && stopDebianNats()) return startNats();
    throw new Error(
      jetstream === 'off'
        ? 'a NATS server without JetStream answers on 127.0.0.1:4222: stop it (Debian\'s service: `systemctl disable --now nats-server`) and run `npm test` again, which starts one with -js'
        : `NATS on 127.0.0.1:4222 did not answer (${jetstream})`,
    );
  }
  if (!has('nats-server')) {
    aptInstall('nats-server');
    stopDebianNats();
  }
  return startNats();
}

async function startNats() {
  console.log('[infra] starting nats-server with JetStream');
  spawnSync('mkdir', ['-p', '/var/lib/nats-server']);
  const args = ['-a', NATS.host, '-p', String(NATS.port), '-js', '-sd', '/var/lib/nats-server', '-l', '/var/log/nats-server.log'];
  if (has('start-stop-daemon')) {
    spawnSync('start-stop-daemon', ['--start', '--oknodo', '--background', '--exec', which('nats-server'), '--', ...args], { stdio: 'inherit' });
  } else {
    spawnSync('sh', ['-c', `nohup nats-server ${args.join(' ')} >/dev/null 2>&1 &`]);
  }
  if (!(await waitReachable(NATS, 20))) throw new Error('nats-server could not be started on 127.0.0.1:4222');
  if ((await localJetStream()) !== 'on') throw new Error('the nats-server on 127.0.0.1:4222 runs without JetStream: stop it and run `npm test` again, which starts one with -js');
}
