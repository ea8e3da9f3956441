#!/usr/bin/env node
// `npm run bench`: benchmarks the gateway → identity path the way production runs it.
//
// Creates its own database (ally_bench_<random>) and NATS subject prefix
// (bench_<random>), migrates identity, starts identity and gateway from dist/
// as child processes, registers and logs in one user through the gateway, then
// measures:
//   1. GET /v1/me (JWT checked in the gateway, RPC to identity, DB read) with autocannon;
//   2. POST /v1/auth/login (argon2id m=19 MiB, t=2, p=1) with autocannon;
//   3. sequential NATS request/reply between two processes, bare and through
//      the Nest NATS transport (RpcClient → identity's ally.rpc.identity.jwks.get).
// Prints a table, writes .tmp/bench-results.json, and removes everything it
// created (children, database, roles <prefix>_%, JetStream streams), also on
// failure or Ctrl-C.
//
// Options (npm run bench -- --me-seconds=5 ...):
//   --no-build            use the existing dist/ instead of building first
//   --me-seconds=20       measured duration of GET /v1/me (after --warmup-seconds)
//   --me-connections=64
//   --login-seconds=10
//   --login-connections=8
//   --warmup-seconds=3
//   --rpc-n=5000          sequential round trips per RPC measurement
//   --only=me,login,rpc   run a subset
//   --cpu-prof            write V8 CPU profiles of identity and gateway to .tmp/bench-prof/
//   --keep                leave services running until Ctrl-C (for poking at them)
//   --verbose             show the services' own output
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { cpuMeter } from './cpu.mjs';
import { commandLine, createBenchWorld, freePort, machine, gitCommit, json, pct, root, round, sleep } from './world.mjs';


const { values: opt } = parseArgs({
  options: {
    'no-build': { type: 'boolean', default: false },
    'me-seconds': { type: 'string', default: '20' },
    'me-connections': { type: 'string', default: '64' },
    'login-seconds': { type: 'string', default: '10' },
    'login-connections': { type: 'string', default: '8' },
    'warmup-seconds': { type: 'string', default: '3' },
    'rpc-n': { type: 'string', default: '5000' },
    only: { type: 'string', default: 'me,login,rpc' },
    'cpu-prof': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    verbose: { type: 'boolean', default: false },
  },
});
const cfg = {
  meSeconds: Number(opt['me-seconds']),
  meConnections: Number(opt['me-connections']),
  loginSeconds: Number(opt['login-seconds']),
  loginConnections: Number(opt['login-connections']),
  warmupSeconds: Number(opt['warmup-seconds']),
  rpcN: Number(opt['rpc-n']),
  only: new Set(opt.only.split(',').map((s) => s.trim())),
};

const PG_ADMIN = new URL(process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
const NATS_URL = process.env.BENCH_NATS_URL ?? 'nats://127.0.0.1:4222';
const random = randomBytes(4).toString('hex');
const PREFIX = `bench_${random}`;
const DATABASE = `ally_bench_${random}`;
const PASSWORD = 'Sommerwiese am Fluss 2026';
const EMAIL = `bench-${random}@example.eu`;
const HIGH = '100000000';

const log = (line) => console.log(`[bench] ${line}`);

// ---------------------------------------------------------------- the world

/** Processes whose CPU time each measurement reports (see cpu.mjs). */
const meterGroups = { groups: {}, database: DATABASE };
let natsConn;
const world = createBenchWorld({ tag: 'bench', prefix: PREFIX, database: DATABASE, pgAdmin: PG_ADMIN, natsUrl: NATS_URL, verbose: opt.verbose, stopTimeoutMs: 8_000, natsConnection: () => natsConn });
const { children, start, runToEnd, waitReady, admin, cleanup } = world;
const http = json;

function autocannonRun(options) {
  return new Promise((resolve, reject) => {
    autocannon(options, (err, result) => (err ? reject(err) : resolve(result)));
  });
}


function summarise(samplesMs) {
  const s = [...samplesMs].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  return { n: s.length, p50Ms: round(pct(s, 50), 3), p90Ms: round(pct(s, 90), 3), p99Ms: round(pct(s, 99), 3), maxMs: round(s[s.length - 1], 3), meanMs: round(mean, 3) };
}

/** Times `n` sequential calls of `f` (after `warmup` untimed ones), in milliseconds. */
async function sequential(f, n, warmup) {
  for (let i = 0; i < warmup; i++) await f();
  const meter = cpuMeter(meterGroups);
  const samples = new Array(n);
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await f();
    samples[i] = Number(process.hrtime.bigint() - t0) / 1e6;
  }
  return { ...summarise(samples), cpuPercentOfOneCore: meter.stop() };
}

/** An HTTP load run: warm-up (discarded), then the measured run. */
async function load(name, options, warmupSeconds) {
  if (warmupSeconds > 0) await autocannonRun({ ...options, duration: warmupSeconds });
  const meter = cpuMeter(meterGroups);
  const r = await autocannonRun(options);
  const cpu = meter.stop();
  const ok = r['2xx'];
  const failed = r.non2xx + r.errors + r.timeouts;
  if (failed > 0) console.error(`[bench] ${name}: ${r.non2xx} non-2xx answers, ${r.errors} errors, ${r.timeouts} timeouts`);
  return {
    connections: options.connections,
    durationS: round(r.duration, 1),
    requests: ok + r.non2xx,
    ok2xx: ok,
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    reqPerSec: round(ok / r.duration, 1),
    p50Ms: r.latency.p50,
    p90Ms: r.latency.p90,
    p99Ms: r.latency.p99,
    maxMs: r.latency.max,
    meanMs: round(r.latency.average, 2),
    cpuPercentOfOneCore: cpu,
  };
}

// ---------------------------------------------------------------- the run

const results = {
  date: new Date().toISOString(),
  machine: machine(),
  commit: gitCommit(),
  command: commandLine('run.mjs'),
  setup: {
    nodeEnv: 'test',
    logLevel: 'warn',
    note: 'identity, gateway, Postgres, NATS and the load generator (autocannon, in this process) share the same machine',
  },
  measurements: {},
};

async function mainRun() {
  const { common, db } = await world.prepare({ noBuild: opt['no-build'] });
  const { connectNats, RpcClient } = await import('@ally/messaging');
  // RpcClient is a Nest ClientNats; its status lines would otherwise go to Nest's console logger.
  (await import('@nestjs/common')).Logger.overrideLogger(['error']);
  const { IdentityRpc } = await import('@ally/contracts');

  const [identityPort, gatewayPort] = [await freePort(), await freePort()];
  const identityEnv = {
    ...common,
    HTTP_PORT: String(identityPort),
    ...db('identity'),
    LOGIN_MAX_FAILURES_PER_ACCOUNT: HIGH,
    LOGIN_MAX_FAILURES_PER_IP: HIGH,
  };
  const gatewayEnv = {
    ...common,
    HTTP_PORT: String(gatewayPort),
    GATEWAY_PORT: String(gatewayPort),
    RATE_LIMIT_PER_MINUTE: HIGH,
    AUTH_RATE_LIMIT_PER_MINUTE: HIGH,
  };
  const mainOf = (svc) => join(root, 'services', svc, 'dist', 'main.js');
  const profDir = join(root, '.tmp', 'bench-prof');
  if (opt['cpu-prof']) await mkdir(profDir, { recursive: true });
  const nodeArgs = (svc) => (opt['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`, `--cpu-prof-name=${svc}-${random}.cpuprofile`] : []);

  log((await runToEnd('identity migrate', [mainOf('identity'), 'migrate'], identityEnv)).trim());
  const identity = start('identity', [...nodeArgs('identity'), mainOf('identity')], identityEnv);
  await waitReady(identity, `http://127.0.0.1:${identityPort}/health/ready`);
  const gateway = start('gateway', [...nodeArgs('gateway'), mainOf('gateway')], gatewayEnv);
  const base = `http://127.0.0.1:${gatewayPort}`;
  await waitReady(gateway, `${base}/health/ready`);
  log(`identity on :${identityPort}, gateway on :${gatewayPort}`);
  meterGroups.groups = { gateway: [gateway.pid], identity: [identity.pid] };

  const registered = await http('POST', `${base}/v1/auth/register`, { email: EMAIL, password: PASSWORD, firstName: 'Bench', lastName: 'Mark', locale: 'en' });
  if (registered.status !== 201) throw new Error(`register answered ${registered.status}: ${JSON.stringify(registered.body)}`);
  const login = await http('POST', `${base}/v1/auth/login`, { email: EMAIL, password: PASSWORD });
  if (login.status !== 200) throw new Error(`login answered ${login.status}: ${JSON.stringify(login.body)}`);
  const token = login.body.accessToken;
  const me = await http('GET', `${base}/v1/me`, undefined, token);
  if (me.status !== 200 || me.body.id !== registered.body.user.id) throw new Error(`GET /v1/me answered ${me.status}: ${JSON.stringify(me.body)}`);

  if (cfg.only.has('me')) {
    log(`GET /v1/me: ${cfg.meConnections} connections, ${cfg.warmupSeconds} s warm-up + ${cfg.meSeconds} s`);
    results.measurements.me = {
      what: 'GET /v1/me through gateway (JWT verify) → NATS RPC → identity (Postgres)',
      goal: { reqPerSec: 2000, p99Ms: 50 },
      ...(await load(
        'GET /v1/me',
        { url: `${base}/v1/me`, connections: cfg.meConnections, duration: cfg.meSeconds, headers: { authorization: `Bearer ${token}` } },
        cfg.warmupSeconds,
      )),
    };
  }

  if (cfg.only.has('login')) {
    log(`POST /v1/auth/login: ${cfg.loginConnections} connections, 2 s warm-up + ${cfg.loginSeconds} s`);
    results.measurements.login = {
      what: 'POST /v1/auth/login (argon2id m=19 MiB, t=2, p=1; session + refresh token + audit + outbox)',
      ...(await load(
        'POST /v1/auth/login',
        {
          url: `${base}/v1/auth/login`,
          method: 'POST',
          connections: cfg.loginConnections,
          duration: cfg.loginSeconds,
          timeout: 30,
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ email: EMAIL, password: PASSWORD }),
        },
        2,
      )),
    };
    const m = results.measurements.login;
    m.loginsPerSec = m.reqPerSec;
  }

  if (cfg.only.has('rpc')) {
    natsConn = await connectNats({ url: NATS_URL, name: `bench-requester-${process.pid}` });
    const subject = `${PREFIX}.bench.echo`;
    const responder = start('nats-responder', [join(root, 'tools', 'bench', 'nats-responder.mjs'), NATS_URL, subject], common, { stdin: 'pipe' });
    await new Promise((resolve, reject) => {
      const onData = (chunk) => {
        if (String(chunk).includes('ready')) {
          responder.stdout.off('data', onData);
          resolve();
        }
      };
      responder.stdout.on('data', onData);
      responder.once('exit', () => reject(new Error(`nats-responder exited:\n${responder.output}`)));
    });
    meterGroups.groups.responder = [responder.pid];
    // About the size of a Nest RPC request for getMe (actor, input, meta).
    const payload = new TextEncoder().encode(JSON.stringify({ pattern: 'ally.rpc.identity.me.get', data: { actor: { userId: registered.body.user.id, platformRoles: [] }, input: {}, meta: { ip: '127.0.0.1', correlationId: 'b3f8c1d2-0000-4000-8000-000000000000' } }, id: 'x'.repeat(36) }));
    log(`bare NATS request/reply: ${cfg.rpcN} sequential round trips (${payload.length} B payload)`);
    results.measurements.natsBare = {
      what: 'bare @nats-io/transport-node request/reply, this process → responder child process, sequential',
      payloadBytes: payload.length,
      ...(await sequential(() => natsConn.request(subject, payload, { timeout: 5_000 }), cfg.rpcN, Math.min(500, cfg.rpcN))),
    };

    // Splits the Nest RPC cost: the same request as RpcClient sends, but with the
    // client's shared request inbox (nc.request) instead of Nest's inbox per call.
    const nestRequest = new TextEncoder().encode(JSON.stringify({ pattern: IdentityRpc.jwks.subject, data: { input: {} }, id: '00000000-0000-4000-8000-000000000000' }));
    const jwksSubject = `${PREFIX}.${IdentityRpc.jwks.subject}`;
    log(`nc.request() to identity's Nest server: ${cfg.rpcN} sequential round trips`);
    results.measurements.natsToNestServer = {
      what: `@nats-io request (shared inbox) with a Nest-format packet → identity's RpcServer, ${IdentityRpc.jwks.subject}, sequential`,
      ...(await sequential(
        async () => {
          const reply = (await natsConn.request(jwksSubject, nestRequest, { timeout: 5_000 })).json();
          if (!reply.response?.keys) throw new Error(`unexpected reply from identity: ${JSON.stringify(reply)}`);
        },
        cfg.rpcN,
        Math.min(500, cfg.rpcN),
      )),
    };

    const rpc = new RpcClient(natsConn, PREFIX, 5_000);
    await rpc.connect();
    log(`Nest NATS transport: ${cfg.rpcN} sequential RpcClient calls of ${IdentityRpc.jwks.subject}`);
    results.measurements.natsNest = {
      what: `RpcClient (Nest ClientNats) → identity's RpcServer (Nest ServerNats), ${IdentityRpc.jwks.subject} (in-memory answer), sequential`,
      ...(await sequential(() => rpc.call(IdentityRpc.jwks, {}), cfg.rpcN, Math.min(500, cfg.rpcN))),
    };
    await rpc.close();
    delete meterGroups.groups.responder;
  }

  if (opt.keep) {
    log(`--keep: gateway on ${base}, token:\n${token}\nCtrl-C to stop and clean up`);
    await new Promise(() => undefined);
  }
}

function printTable() {
  const m = results.measurements;
  const rows = [];
  if (m.me) rows.push(['GET /v1/me', `${m.me.connections} conn, ${m.me.durationS} s`, `${m.me.reqPerSec} req/s`, m.me.p50Ms, m.me.p99Ms, `${m.me.non2xx + m.me.errors + m.me.timeouts} failed; goal ≥ 2000 req/s, p99 < 50 ms: ${m.me.reqPerSec >= 2000 && m.me.p99Ms < 50 ? 'met' : 'MISSED'}`]);
  if (m.login) rows.push(['POST /v1/auth/login', `${m.login.connections} conn, ${m.login.durationS} s`, `${m.login.reqPerSec} logins/s`, m.login.p50Ms, m.login.p99Ms, `${m.login.non2xx + m.login.errors + m.login.timeouts} failed`]);
  if (m.natsBare) rows.push(['NATS req/reply (bare)', `sequential, n=${m.natsBare.n}`, `${round(1000 / m.natsBare.meanMs, 0)} rt/s`, m.natsBare.p50Ms, m.natsBare.p99Ms, `${m.natsBare.payloadBytes} B payload`]);
  if (m.natsToNestServer) rows.push(['NATS req/reply → Nest server', `sequential, n=${m.natsToNestServer.n}`, `${round(1000 / m.natsToNestServer.meanMs, 0)} rt/s`, m.natsToNestServer.p50Ms, m.natsToNestServer.p99Ms, 'nc.request(), identity jwks.get']);
  if (m.natsNest) rows.push(['NATS req/reply (Nest RPC)', `sequential, n=${m.natsNest.n}`, `${round(1000 / m.natsNest.meanMs, 0)} rt/s`, m.natsNest.p50Ms, m.natsNest.p99Ms, 'identity jwks.get']);
  const head = ['benchmark', 'load', 'throughput', 'p50 ms', 'p99 ms', 'notes'];
  const all = [head, ...rows].map((r) => r.map(String));
  const widths = head.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  const line = (r) => `| ${r.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  console.log();
  console.log(line(head));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of rows) console.log(line(r.map(String)));
  const disturbed = Object.entries(m).filter(([, v]) => (v.cpuPercentOfOneCore?.other ?? 0) > 15);
  if (disturbed.length) {
    console.log(`\nWARNING: other processes used CPU during ${disturbed.map(([k, v]) => `${k} (${v.cpuPercentOfOneCore.other} % of a core)`).join(', ')}: those figures are disturbed.`);
  }
  for (const [k, v] of Object.entries(m)) {
    if (v.cpuPercentOfOneCore) console.log(`cpu ${k}: ${Object.entries(v.cpuPercentOfOneCore).map(([g, p]) => (typeof p === 'number' ? `${g} ${p}%` : `${g} ${JSON.stringify(p)}`)).join(', ')}`);
  }
  console.log(`\n${results.machine.nproc} CPUs (${results.machine.cpu}), Node ${results.machine.node}, ${results.date}, commit ${results.commit ?? '?'}`);
}

let exitCode = 0;
try {
  await mainRun();
  printTable();
  await mkdir(join(root, '.tmp'), { recursive: true });
  await writeFile(join(root, '.tmp', 'bench-results.json'), `${JSON.stringify(results, null, 2)}\n`);
  log('results written to .tmp/bench-results.json');
} catch (err) {
  console.error(`[bench] failed: ${err?.stack ?? err}`);
  exitCode = 1;
} finally {
  await cleanup();
  log('cleaned up');
}
process.exit(exitCode);
