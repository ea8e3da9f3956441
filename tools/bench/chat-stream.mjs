#!/usr/bin/env node
// Chat streaming benchmark: what the gateway → chat → provider path adds to a
// streamed completion, against the OpenAI/Azure emulator answering at a
// realistic token pace.
//
// Creates its own database (ally_bench_chat_<random>) and NATS subject prefix
// (benchchat_<random>), migrates identity and chat, starts the OpenAI emulator,
// identity, chat and gateway from dist/ as child processes, registers a user,
// and then, for each concurrency level (1, 16, 64 streams), runs clients that
// loop for --seconds, each sending one message after the other:
//   direct   the same request chat sends (Azure path of the Sweden Central
//            deployment, stream: true, include_usage) straight to the emulator;
//   gateway  POST /v1/conversations/:id/messages with Accept: text/event-stream
//            (JWT check, NATS RPC to chat, policy, history decryption, the
//            provider call through the openai SDK, frames over NATS back to the
//            gateway's SSE relay, the encrypted answer and usage event stored).
// Measured per stream: TTFT (request sent → first bytes of the first `delta`
// event / the first chunk with content) and total time (→ end of response);
// per run: p50/p99 and completed streams/s. "Added TTFT" is gateway minus direct.
// Each client keeps a conversation for --turns messages (history grows as in a
// real chat), then moves on to a fresh one; direct requests carry the same
// history. Prints a table, writes .tmp/bench-chat.json and removes everything
// it created (children, database, roles <prefix>_%, JetStream streams), also
// on failure or Ctrl-C.
//
// Options (node tools/bench/chat-stream.mjs --seconds=5 ...):
//   --no-build             use the existing dist/ instead of building first
//   --seconds=10           measured duration per run (each client loops this long)
//   --warmup-seconds=2     discarded warm-up before each run
//   --levels=1,16,64       concurrent streams
//   --tokens=50            tokens per answer (`#tokens=N`)
//   --token-ms=5           emulator delay between tokens
//   --first-token-ms=0     emulator delay before the first token
//   --turns=10             messages per conversation before a new one
//   --spread               clients start one after the other over one answer's time and
//                          keep going from the warm-up into the run (independent users);
//                          by default all start together, after the warm-up as well, and
//                          answers of equal length keep them arriving in waves
//   --retries=3            measure a run again when other processes used > 15 % of a core meanwhile
//   --only=direct,gateway  run a subset
//   --chat-replicas=1      chat processes (one RPC queue group, as replicas in the cluster)
//   --coalesce-ms=N        chat's STREAM_COALESCE_MS (default: chat's own, 20)
//   --cpu-prof             V8 CPU profiles of the emulator, identity, chat and gateway in .tmp/bench-prof/
//   --keep                 leave everything running until Ctrl-C
//   --verbose              show the children's output
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { commandLine, createBenchWorld, freePort, machine, gitCommit, json, pct, root, round, sleep } from './world.mjs';


const { values: opt } = parseArgs({
  options: {
    'no-build': { type: 'boolean', default: false },
    seconds: { type: 'string', default: '10' },
    'warmup-seconds': { type: 'string', default: '2' },
    levels: { type: 'string', default: '1,16,64' },
    tokens: { type: 'string', default: '50' },
    'token-ms': { type: 'string', default: '5' },
    'first-token-ms': { type: 'string', default: '0' },
    turns: { type: 'string', default: '10' },
    retries: { type: 'string', default: '3' },
    only: { type: 'string', default: 'direct,gateway' },
    'chat-replicas': { type: 'string', default: '1' },
    'coalesce-ms': { type: 'string' },
    'cpu-prof': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    spread: { type: 'boolean', default: false },
    verbose: { type: 'boolean', default: false },
  },
});
const cfg = {
  seconds: Number(opt.seconds),
  warmupSeconds: Number(opt['warmup-seconds']),
  levels: opt.levels.split(',').map(Number).filter((n) => n > 0),
  tokens: Number(opt.tokens),
  tokenMs: Number(opt['token-ms']),
  firstTokenMs: Number(opt['first-token-ms']),
  turns: Math.max(1, Number(opt.turns)),
  retries: Number(opt.retries),
  only: new Set(opt.only.split(',').map((s) => s.trim())),
};
/** % of a core used by processes outside the benchmark above which a run counts as disturbed. */
const DISTURBED = 15;
const GOAL = { concurrency: 64, addedTtftP50Ms: 5, addedTtftP99Ms: 25, throughputRatio: 0.7 };

const PG_ADMIN = new URL(process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
const NATS_URL = process.env.BENCH_NATS_URL ?? 'nats://127.0.0.1:4222';
const random = randomBytes(4).toString('hex');
const PREFIX = `benchchat_${random}`;
const DATABASE = `ally_bench_chat_${random}`;
const PASSWORD = 'Sommerwiese am Fluss 2026';
const EMAIL = `bench-chat-${random}@example.eu`;
const HIGH = '10000000';
/** The deployment the default model routes to for a user restricted to the EU. */
const AZURE = { id: 'gpt-4o-mini@azure-swedencentral', deployment: 'gpt-4o-mini-swc', apiVersion: '2024-10-21' };

const log = (line) => console.log(`[bench-chat] ${line}`);

// ---------------------------------------------------------------- the world

const pids = {};
const world = createBenchWorld({ tag: 'bench-chat', prefix: PREFIX, database: DATABASE, pgAdmin: PG_ADMIN, natsUrl: NATS_URL, verbose: opt.verbose, stopOrder: ['gateway', 'chat', 'identity', 'openai-emulator'] });
const { children, start, runToEnd, waitReady, admin, cleanup } = world;

// ---------------------------------------------------------------- HTTP

/**
 * One streamed request over a keep-alive agent. `firstMarker` is the text whose
 * arrival counts as the first token. Resolves with the timings and the body.
 */
function streamOnce(agent, url, headers, payload, firstMarker) {
  return new Promise((resolve) => {
    const u = new URL(url);
    const body = Buffer.from(JSON.stringify(payload));
    let ttft;
    let tail = '';
    let text = '';
    let t0;
    const req = http.request(
      { agent, host: u.hostname, port: u.port, path: u.pathname + u.search, method: 'POST', headers: { ...headers, 'content-type': 'application/json', 'content-length': body.length } },
      (res) => {
        res.setEncoding('utf8');
        res.on('data', (chunk) => {
          if (ttft === undefined) {
            if ((tail + chunk).includes(firstMarker)) ttft = performance.now() - t0;
            else tail = chunk.slice(-firstMarker.length);
          }
          text += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode, ttft, total: performance.now() - t0, text }));
        res.on('error', (err) => resolve({ status: res.statusCode, error: String(err), ttft, total: performance.now() - t0, text }));
      },
    );
    req.on('error', (err) => resolve({ status: 0, error: String(err), ttft, total: performance.now() - t0, text }));
    t0 = performance.now();
    req.end(body);
  });
}

// ---------------------------------------------------------------- stats

function summarise(samples) {
  if (!samples.length) return { n: 0 };
  const s = [...samples].sort((a, b) => a - b);
  return { n: s.length, p50Ms: round(pct(s, 50)), p90Ms: round(pct(s, 90)), p99Ms: round(pct(s, 99)), maxMs: round(s.at(-1)), meanMs: round(s.reduce((a, b) => a + b, 0) / s.length) };
}

/** CPU of the benchmark's processes and the rest of the machine during a run (tools/bench/cpu.mjs). */
async function meter() {
  try {
    const { cpuMeter } = await import('./cpu.mjs');
    const m = cpuMeter({ groups: { ...pids }, database: DATABASE });
    return () => {
      try {
        return m.stop();
      } catch {
        return undefined;
      }
    };
  } catch {
    return () => undefined;
  }
}

/** Busy % of one core over `ms`, of the whole machine (to wait for a quiet machine). */
async function machineBusy(ms = 1000) {
  const read = () => {
    const [, ...n] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).map(Number);
    return { busy: n[0] + n[1] + n[2] + n[5] + n[6] + (n[7] ?? 0), all: n.slice(0, 8).reduce((a, b) => a + (b || 0), 0) };
  };
  try {
    const a = read();
    await sleep(ms);
    const b = read();
    return round(((b.busy - a.busy) / (b.all - a.all)) * os.availableParallelism() * 100, 0);
  } catch {
    return 0;
  }
}

/** Others benchmarking on the same machine would disturb the figures: wait up to a minute for quiet. */
async function waitQuiet(label) {
  let busy = await machineBusy();
  for (let i = 0; busy > 40 && i < 60; i++) {
    if (i === 0) log(`${label}: the machine is busy (${busy} % of a core before starting); waiting for it to calm down`);
    busy = await machineBusy();
  }
  return busy;
}

// ---------------------------------------------------------------- the run

const results = {
  date: new Date().toISOString(),
  machine: machine(),
  commit: gitCommit(),
  command: commandLine('chat-stream.mjs'),
  setup: {
    nodeEnv: 'test',
    logLevel: 'warn',
    quota: 'QUOTA_PROVIDER=none (billing not started; with billing the answer is cached 5 s per user)',
    emulator: { tokensPerAnswer: cfg.tokens, firstTokenLatencyMs: cfg.firstTokenMs, latencyPerTokenMs: cfg.tokenMs },
    deployment: AZURE.id,
    chatReplicas: Number(opt['chat-replicas']),
    streamCoalesceMs: opt['coalesce-ms'] !== undefined ? Number(opt['coalesce-ms']) : 'default (20)',
    secondsPerRun: cfg.seconds,
    warmupSecondsPerRun: cfg.warmupSeconds,
    turnsPerConversation: cfg.turns,
    arrivals: opt.spread
      ? 'spread: client i starts i/n of an answer time after the first, and the load runs on from the warm-up into the run (only requests sent in the run are counted)'
      : 'together: all clients start at once for the warm-up and again for the run',
    ttft: 'request sent → first bytes of the first `delta` event (gateway) / of the first chunk with content (direct)',
    note: 'emulator, identity, chat, gateway, Postgres, NATS and the load generator (this process) share the machine',
  },
  goal: GOAL,
  runs: [],
};

let ctx;

async function setUp() {
  const { common, db } = await world.prepare({ noBuild: opt['no-build'] });
  const [emulatorPort, identityPort, chatPort, gatewayPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const emulatorUrl = `http://127.0.0.1:${emulatorPort}`;
  const env = {
    identity: {
      ...common,
      HTTP_PORT: String(identityPort),
      ...db('identity'),
      LOGIN_MAX_FAILURES_PER_ACCOUNT: HIGH,
      LOGIN_MAX_FAILURES_PER_IP: HIGH,
    },
    chat: {
      ...common,
      HTTP_PORT: String(chatPort),
      ...db('chat'),
      MODEL_CATALOG_FILE: join(root, 'services/chat/config/models.dev.json'),
      OPENAI_EMULATOR_URL: emulatorUrl,
      CHAT_KEK: randomBytes(32).toString('base64'),
      // billing is not part of this benchmark; with it, chat asks once per user and QUOTA_CACHE_MS (5 s).
      QUOTA_PROVIDER: 'none',
      ...(opt['coalesce-ms'] !== undefined ? { STREAM_COALESCE_MS: opt['coalesce-ms'] } : {}),
    },
    gateway: {
      ...common,
      HTTP_PORT: String(gatewayPort),
      GATEWAY_PORT: String(gatewayPort),
      RATE_LIMIT_PER_MINUTE: HIGH,
      AUTH_RATE_LIMIT_PER_MINUTE: HIGH,
    },
  };
  const mainOf = (svc) => join(root, 'services', svc, 'dist', 'main.js');
  const profDir = join(root, '.tmp', 'bench-prof');
  if (opt['cpu-prof']) await mkdir(profDir, { recursive: true });
  const nodeArgs = (svc) => (opt['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`, `--cpu-prof-name=chat-stream-${svc}-${random}.cpuprofile`] : []);

  const emulator = start('openai-emulator', [...nodeArgs('emulator'), join(root, 'tools/emulators/dist/openai/main.js')], {
    PATH: process.env.PATH,
    OPENAI_EMULATOR_PORT: String(emulatorPort),
    OPENAI_EMULATOR_FIRST_TOKEN_MS: String(cfg.firstTokenMs),
    OPENAI_EMULATOR_TOKEN_MS: String(cfg.tokenMs),
  });
  await waitReady(emulator, `${emulatorUrl}/v1/models`);
  pids.emulator = [emulator.pid];

  for (const svc of ['identity', 'chat']) log((await runToEnd(`${svc} migrate`, [mainOf(svc), 'migrate'], env[svc])).trim() || `${svc} migrated`);
  const services = {};
  for (const [svc, port] of [['identity', identityPort], ['chat', chatPort], ['gateway', gatewayPort]]) {
    services[svc] = start(svc, [...nodeArgs(svc), mainOf(svc)], env[svc]);
    await waitReady(services[svc], `http://127.0.0.1:${port}/health/ready`);
    pids[svc] = [services[svc].pid];
  }
  for (let i = 1; i < Number(opt['chat-replicas']); i++) {
    const port = await freePort();
    const replica = start(`chat#${i + 1}`, [...nodeArgs(`chat${i + 1}`), mainOf('chat')], { ...env.chat, HTTP_PORT: String(port) });
    await waitReady(replica, `http://127.0.0.1:${port}/health/ready`);
    pids.chat.push(replica.pid);
  }
  const base = `http://127.0.0.1:${gatewayPort}`;
  log(`emulator :${emulatorPort}, identity :${identityPort}, chat :${chatPort}, gateway :${gatewayPort}`);

  const registered = await json('POST', `${base}/v1/auth/register`, { email: EMAIL, password: PASSWORD, firstName: 'Bench', lastName: 'Chat', locale: 'en' });
  if (registered.status !== 201) throw new Error(`register answered ${registered.status}: ${JSON.stringify(registered.body)}`);
  const token = registered.body.accessToken;
  ctx = { base, emulatorUrl, token };

  // One stream each way, checked: the route is the Azure Sweden Central deployment and the answer is whole.
  const conv = await newConversation();
  const check = await gatewayStream(new http.Agent({ keepAlive: true }), { id: conv, history: [] }, 'check');
  if (!check.ok) throw new Error(`a stream through the gateway failed: ${check.error}\n${check.text?.slice(0, 2000)}`);
  const done = JSON.parse(/event: done\ndata: (.*)\n/.exec(check.text)[1]);
  if (done.residency?.deployment !== AZURE.id) throw new Error(`the stream went to ${done.residency?.deployment}, not ${AZURE.id}`);
  const direct = await directStream(new http.Agent({ keepAlive: true }), { history: [] }, 'check');
  if (!direct.ok) throw new Error(`a stream straight to the emulator failed: ${direct.error}\n${direct.text?.slice(0, 2000)}`);
  log(`checked: gateway stream ${round(check.ttft)} ms TTFT / ${round(check.total)} ms, direct ${round(direct.ttft)} / ${round(direct.total)} ms; routed to ${done.residency.deployment}`);
}

async function newConversation() {
  const r = await json('POST', `${ctx.base}/v1/conversations`, { workspace: 'private' }, ctx.token);
  if (r.status !== 201) throw new Error(`POST /v1/conversations answered ${r.status}: ${JSON.stringify(r.body)}`);
  return r.body.id;
}

const question = (tag) => `#tokens=${cfg.tokens} ${tag}`;
const answerText = Array.from({ length: cfg.tokens }, () => 'lorem').join(' ');

function countOf(text, needle) {
  let n = 0;
  for (let i = text.indexOf(needle); i >= 0; i = text.indexOf(needle, i + needle.length)) n++;
  return n;
}

/** One message through the gateway as SSE. */
async function gatewayStream(agent, conv, tag) {
  const content = question(tag);
  const r = await streamOnce(
    agent,
    `${ctx.base}/v1/conversations/${conv.id}/messages`,
    { authorization: `Bearer ${ctx.token}`, accept: 'text/event-stream' },
    { content },
    'event: delta',
  );
  let error = r.error;
  if (!error && r.status !== 200) error = `status ${r.status}`;
  if (!error && !r.text.includes('event: done')) error = /event: error\ndata: (.*)/.exec(r.text)?.[1] ?? 'no done event';
  // Tokens that were ready together arrive in one delta event, so the words are counted, not the events.
  if (!error && countOf(r.text, 'lorem') !== cfg.tokens) error = `${countOf(r.text, 'lorem')} tokens instead of ${cfg.tokens}`;
  if (!error) conv.history.push({ role: 'user', content }, { role: 'assistant', content: answerText });
  return { ...r, ok: !error, error };
}

/** The same request chat sends to the Azure deployment, straight to the emulator. */
async function directStream(agent, conv, tag) {
  const content = question(tag);
  const r = await streamOnce(
    agent,
    `${ctx.emulatorUrl}/openai/deployments/${AZURE.deployment}/chat/completions?api-version=${AZURE.apiVersion}`,
    { 'api-key': 'emulator', accept: 'application/json' },
    { model: AZURE.deployment, messages: [...conv.history, { role: 'user', content }], store: false, stream: true, stream_options: { include_usage: true } },
    '"delta":{"content":"',
  );
  let error = r.error;
  if (!error && r.status !== 200) error = `status ${r.status}`;
  if (!error && !r.text.includes('data: [DONE]')) error = 'no [DONE]';
  if (!error && countOf(r.text, '"delta":{"content":"') !== cfg.tokens) error = `${countOf(r.text, '"delta":{"content":"')} content chunks instead of ${cfg.tokens}`;
  if (!error) conv.history.push({ role: 'user', content }, { role: 'assistant', content: answerText });
  return { ...r, ok: !error, error };
}

/**
 * `concurrency` clients, each sending one message after the other until `seconds` are over.
 * Conversations for the gateway are created beforehand (not timed); a client runs out only if
 * streams are far faster than the emulator's pace allows, and then creates one in the loop.
 */
async function runLoad(path, concurrency, seconds, label, { warmupSeconds = 0, spread = false } = {}) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const answerMs = Math.max(1, cfg.firstTokenMs + cfg.tokenMs * cfg.tokens);
  const perClient = Math.ceil(((warmupSeconds + seconds) * 1000) / answerMs / cfg.turns) + 1;
  const pools = [];
  for (let c = 0; c < concurrency; c++) {
    const pool = [];
    if (path === 'gateway') {
      const ids = await Promise.all(Array.from({ length: perClient }, () => newConversation()));
      for (const id of ids) pool.push({ id, history: [], turns: 0 });
    }
    pools.push(pool);
  }
  const samples = { ttft: [], total: [] };
  const failures = [];
  const stream = path === 'gateway' ? gatewayStream : directStream;
  const started = performance.now();
  // Measured from the end of the warm-up (at once without one): the meter starts then, and only requests sent since count.
  const t0 = started + warmupSeconds * 1000;
  const deadline = t0 + seconds * 1000;
  let stop = () => undefined;
  const metering = sleep(warmupSeconds * 1000).then(async () => (stop = await meter()));
  await Promise.all(
    pools.map(async (pool, c) => {
      if (spread) await sleep((c * answerMs) / concurrency);
      let conv;
      for (let i = 0; performance.now() < deadline; i++) {
        if (!conv || conv.turns >= cfg.turns) {
          conv = pool.shift() ?? (path === 'gateway' ? { id: await newConversation(), history: [], turns: 0 } : { history: [], turns: 0 });
        }
        conv.turns++;
        const counted = performance.now() >= t0;
        const r = await stream(agent, conv, `${label} client ${c} message ${i}`);
        if (!counted) continue;
        if (r.ok) {
          samples.ttft.push(r.ttft);
          samples.total.push(r.total);
        } else {
          failures.push(r.error);
        }
      }
    }),
  );
  await metering;
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = stop();
  agent.destroy();
  return {
    path,
    concurrency,
    seconds: round(elapsed, 2),
    streams: samples.ttft.length,
    failed: failures.length,
    ...(failures.length ? { failures: [...new Set(failures)].slice(0, 5) } : {}),
    streamsPerSec: round(samples.ttft.length / elapsed, 1),
    ttft: summarise(samples.ttft),
    total: summarise(samples.total),
    ...(cpu ? { cpuPercentOfOneCore: cpu, cpuMsPerStream: perStream(cpu, samples.ttft.length / elapsed) } : {}),
  };
}

/** CPU per completed answer, by process: steadier across runs than streams/s on a machine whose speed drifts. */
function perStream(cpu, streamsPerSec) {
  if (!streamsPerSec) return {};
  return Object.fromEntries(Object.entries(cpu).filter(([, p]) => typeof p === 'number').map(([g, p]) => [g, round((p / 100) * 1000 / streamsPerSec, 2)]));
}

async function measure() {
  for (const concurrency of cfg.levels) {
    for (const path of ['direct', 'gateway']) {
      if (!cfg.only.has(path)) continue;
      let run;
      for (let attempt = 0; ; attempt++) {
        const before = await waitQuiet(`${path} ×${concurrency}`);
        log(`${path}: ${concurrency} concurrent stream${concurrency > 1 ? 's' : ''}, ${cfg.warmupSeconds} s warm-up + ${cfg.seconds} s (machine ${before} % busy before)`);
        if (opt.spread) {
          run = await runLoad(path, concurrency, cfg.seconds, 'run', { warmupSeconds: cfg.warmupSeconds, spread: true });
        } else {
          if (cfg.warmupSeconds > 0) await runLoad(path, concurrency, cfg.warmupSeconds, 'warm-up');
          run = await runLoad(path, concurrency, cfg.seconds, 'run');
        }
        run.machineBusyBeforePercent = before;
        const other = run.cpuPercentOfOneCore?.other ?? 0;
        if (other <= DISTURBED || attempt >= cfg.retries) break;
        log(`  disturbed: other processes used ${other} % of a core (${Object.keys(run.cpuPercentOfOneCore.otherTop ?? {}).join(', ')}); measuring again`);
      }
      results.runs.push(run);
      log(`  ${run.streams} streams (${run.failed} failed), ${run.streamsPerSec}/s, TTFT p50 ${run.ttft.p50Ms} p99 ${run.ttft.p99Ms} ms, total p50 ${run.total.p50Ms} p99 ${run.total.p99Ms} ms`);
      if (run.failed) log(`  failures: ${run.failures.join(' | ')}`);
    }
  }
  results.comparison = cfg.levels
    .map((concurrency) => {
      const d = results.runs.find((r) => r.path === 'direct' && r.concurrency === concurrency);
      const g = results.runs.find((r) => r.path === 'gateway' && r.concurrency === concurrency);
      if (!d || !g || !d.ttft.n || !g.ttft.n) return undefined;
      return {
        concurrency,
        addedTtftP50Ms: round(g.ttft.p50Ms - d.ttft.p50Ms),
        addedTtftP99Ms: round(g.ttft.p99Ms - d.ttft.p99Ms),
        addedTotalP50Ms: round(g.total.p50Ms - d.total.p50Ms),
        addedTotalP99Ms: round(g.total.p99Ms - d.total.p99Ms),
        throughputRatio: round(g.streamsPerSec / d.streamsPerSec, 3),
      };
    })
    .filter(Boolean);
  const at = results.comparison.find((c) => c.concurrency === GOAL.concurrency);
  if (at) {
    results.goalsMet = {
      addedTtftP50: at.addedTtftP50Ms < GOAL.addedTtftP50Ms,
      addedTtftP99: at.addedTtftP99Ms < GOAL.addedTtftP99Ms,
      throughput: at.throughputRatio >= GOAL.throughputRatio,
    };
  }
}

function printTable() {
  const rows = results.runs.map((r) => {
    const c = results.comparison.find((x) => x.concurrency === r.concurrency);
    const added = r.path === 'gateway' && c ? `+${c.addedTtftP50Ms} / +${c.addedTtftP99Ms}` : '';
    const ratio = r.path === 'gateway' && c ? `${round(c.throughputRatio * 100, 0)} %` : '';
    return [r.path, r.concurrency, r.streams, r.failed, r.streamsPerSec, r.ttft.p50Ms, r.ttft.p99Ms, added, r.total.p50Ms, r.total.p99Ms, ratio];
  });
  const head = ['path', 'streams', 'done', 'failed', 'streams/s', 'TTFT p50', 'TTFT p99', 'added TTFT p50/p99', 'total p50', 'total p99', 'vs direct'];
  const all = [head, ...rows].map((r) => r.map(String));
  const widths = head.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  const line = (r) => `| ${r.map((c, i) => String(c).padEnd(widths[i])).join(' | ')} |`;
  console.log(`\nms; ${cfg.tokens} tokens per answer, emulator ${cfg.firstTokenMs} ms + ${cfg.tokenMs} ms/token, ${cfg.seconds} s per run, clients ${opt.spread ? 'spread over an answer time' : 'starting together'}`);
  console.log(line(head));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of rows) console.log(line(r));
  if (results.goalsMet) {
    const g = results.goalsMet;
    const at = results.comparison.find((c) => c.concurrency === GOAL.concurrency);
    console.log(
      `\nGoals at ${GOAL.concurrency} streams: added TTFT p50 ${at.addedTtftP50Ms} ms < ${GOAL.addedTtftP50Ms}: ${g.addedTtftP50 ? 'met' : 'MISSED'}; ` +
        `p99 ${at.addedTtftP99Ms} ms < ${GOAL.addedTtftP99Ms}: ${g.addedTtftP99 ? 'met' : 'MISSED'}; ` +
        `throughput ${round(at.throughputRatio * 100, 0)} % of direct ≥ ${GOAL.throughputRatio * 100} %: ${g.throughput ? 'met' : 'MISSED'}`,
    );
  }
  const disturbed = results.runs.filter((r) => (r.cpuPercentOfOneCore?.other ?? 0) > DISTURBED);
  if (disturbed.length) {
    console.log(`WARNING: other processes used CPU during ${disturbed.map((r) => `${r.path} ×${r.concurrency} (${r.cpuPercentOfOneCore.other} % of a core${r.cpuPercentOfOneCore.otherTop ? `: ${Object.keys(r.cpuPercentOfOneCore.otherTop).join(', ')}` : ''})`).join('; ')}: those figures are disturbed.`);
  }
  for (const r of results.runs) {
    if (r.cpuPercentOfOneCore) console.log(`cpu ${r.path} ×${r.concurrency}: ${Object.entries(r.cpuPercentOfOneCore).map(([g, p]) => (typeof p === 'number' ? `${g} ${p}%` : `${g} ${JSON.stringify(p)}`)).join(', ')}`);
    if (r.cpuMsPerStream) console.log(`  ms of CPU per answer: ${Object.entries(r.cpuMsPerStream).filter(([g]) => g !== 'other' && g !== 'machineBusy').map(([g, ms]) => `${g} ${ms}`).join(', ')}; machine ${r.cpuMsPerStream.machineBusy}`);
  }
  console.log(`\n${results.machine.nproc} CPUs (${results.machine.cpu}), Node ${results.machine.node}, ${results.date}, commit ${results.commit ?? '?'}`);
}

let exitCode = 0;
try {
  await setUp();
  await measure();
  printTable();
  await mkdir(join(root, '.tmp'), { recursive: true });
  await writeFile(join(root, '.tmp', 'bench-chat.json'), `${JSON.stringify(results, null, 2)}\n`);
  log('results written to .tmp/bench-chat.json');
  if (opt.keep) {
    log(`--keep: gateway on ${ctx.base}, emulator on ${ctx.emulatorUrl}, token:\n${ctx.token}\nCtrl-C to stop and clean up`);
    await new Promise(() => undefined);
  }
} catch (err) {
  console.error(`[bench-chat] failed: ${err?.stack ?? err}`);
  exitCode = 1;
} finally {
  await cleanup();
  log('cleaned up');
}
process.exit(exitCode);
