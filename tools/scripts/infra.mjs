// Postgres and NATS on localhost: check them, and (for tests) start or install them.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { connect } from 'node:net';

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

const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

function aptInstall(pkg) {
  console.log(`[infra] installing ${pkg} from Debian's packages`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  const r = spawnSync('apt-get', ['install', '-y', '-qq', pkg], { stdio: 'inherit', env });
  if (r.status !== 0) throw new Error(`apt-get install ${pkg} failed`);
}

function postgresVersions() {
  return existsSync('/etc/postgresql') ? readdirSync('/etc/postgresql') : [];
}

/** Makes sure Postgres answers on 127.0.0.1:5432 with trust auth for local tests. */
export async function ensurePostgres() {
  if (await reachable(PG)) return;
  if (!has('pg_ctlcluster') || postgresVersions().length === 0) aptInstall('postgresql');
  for (const version of postgresVersions()) {
    console.log(`[infra] starting PostgreSQL ${version}`);
    spawnSync('pg_ctlcluster', ['--skip-systemctl-redirect', version, 'main', 'start'], { stdio: 'inherit' });
    if (await waitReachable(PG, 20)) break;
  }
  if (!(await reachable(PG))) throw new Error('PostgreSQL could not be started on 127.0.0.1:5432');
  // A fresh Debian install asks for passwords on TCP; the tests' own server is trusted locally.
  try {
    execFileSync('psql', ['-h', PG.host, '-U', 'postgres', '-c', 'select 1'], { stdio: 'ignore' });
  } catch {
    for (const version of postgresVersions()) {
      const hba = `/etc/postgresql/${version}/main/pg_hba.conf`;
      spawnSync('sh', ['-c', `sed -i -E 's/^(host\\s+all\\s+all\\s+127\\.0\\.0\\.1\\/32\\s+)\\S+/\\1trust/; s/^(local\\s+all\\s+all\\s+)\\S+/\\1trust/; s/^(local\\s+all\\s+postgres\\s+)\\S+/\\1trust/' ${hba}`]);
      spawnSync('pg_ctlcluster', ['--skip-systemctl-redirect', version, 'main', 'reload'], { stdio: 'inherit' });
    }
  }
}

/** Makes sure nats-server with JetStream answers on 127.0.0.1:4222. */
export async function ensureNats() {
  if (await reachable(NATS)) return;
  if (!has('nats-server')) aptInstall('nats-server');
  console.log('[infra] starting nats-server with JetStream');
  spawnSync('mkdir', ['-p', '/var/lib/nats-server']);
  const args = ['-a', NATS.host, '-p', String(NATS.port), '-js', '-sd', '/var/lib/nats-server', '-l', '/var/log/nats-server.log'];
  if (has('start-stop-daemon')) {
    spawnSync('start-stop-daemon', ['--start', '--oknodo', '--background', '--exec', '/usr/sbin/nats-server', '--', ...args], { stdio: 'inherit' });
  } else {
    spawnSync('sh', ['-c', `nohup nats-server ${args.join(' ')} >/dev/null 2>&1 &`]);
  }
  if (!(await waitReachable(NATS, 20))) throw new Error('nats-server could not be started on 127.0.0.1:4222');
}
