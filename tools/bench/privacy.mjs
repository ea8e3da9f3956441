#!/usr/bin/env node
// Privacy benchmark (issue 6): how long a data-subject request takes for a user
// with many messages, and how fast a retention run purges chat history while
// chat serves traffic.
//
// Creates its own database (ally_bench_privacy_<random>) and NATS subject prefix
// (benchpriv_<random>), migrates identity, chat, billing, notify and privacy,
// starts the OpenAI, Stripe and Brevo emulators and every service from dist/ as
// child processes, then:
//   1. registers a user through the gateway, posts a few messages (chat seals
//      them under the user's data key), and multiplies those rows with SQL
//      (INSERT … SELECT, the ciphertexts stay valid: the AAD is the user id) to
//      --messages messages in --conversations conversations;
//   2. access request: POST /v1/privacy/requests { type: 'access' }, polled
//      until `completed` (every service's export step, the package built,
//      encrypted and stored); the JSON package is checked to hold every message;
//   3. erasure: POST /v1/privacy/requests { type: 'erasure' }, polled (as a
//      compliance user: the subject is logged out) until `completed`; checked:
//      none of their messages are left;
//   4. seeds --expired messages (SQL generate_series) in conversations of
//      --users users in an organisation workspace whose chat_retention_days
//      (chat.org_policies) they are past, plus some that are not, VACUUM ANALYZE;
//   5. a real retention run of category chat-history
//      (POST /v1/admin/privacy/retention-runs), while --load-clients clients
//      keep posting messages through the gateway (OpenAI emulator); reports
//      rows deleted per second (messages + conversations, startedAt → finishedAt
//      of the run) and the chat latency meanwhile; checked: exactly the expired
//      rows went.
// Prints a summary, writes .tmp/bench-privacy.json and removes everything it
// created (children, database, roles <prefix>_%, JetStream streams), also on
// failure or Ctrl-C.
//
// Options (node tools/bench/privacy.mjs --expired=100000 ...):
//   --no-build             use the existing dist/ instead of building first
//   --messages=10000       messages of the export / erasure subject
//   --conversations=100    their conversations
//   --expired=1000000      expired messages for the retention run
//   --per-conversation=10  messages per expired conversation
//   --users=1000           owners of the expired conversations
//   --load-clients=4       concurrent chat clients during the retention run
//   --poll-ms=1000         PRIVACY_POLL_MS of the privacy worker (its default)
//   --export-timeout=120   seconds to wait for the access request before recording it as not done
//   --only=requests,retention
//   --keep                 leave everything running until Ctrl-C
//   --verbose              show the children's output
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { commandLine, createBenchWorld, freePort, machine, gitCommit, json, pct, root, round, sleep } from './world.mjs';


const { values: opt } = parseArgs({
  options: {
    'no-build': { type: 'boolean', default: false },
    messages: { type: 'string', default: '10000' },
    conversations: { type: 'string', default: '100' },
    expired: { type: 'string', default: '1000000' },
    'per-conversation': { type: 'string', default: '10' },
    users: { type: 'string', default: '1000' },
    'load-clients': { type: 'string', default: '4' },
    'poll-ms': { type: 'string', default: '1000' },
    'export-timeout': { type: 'string', default: '120' },
    only: { type: 'string', default: 'requests,retention' },
    keep: { type: 'boolean', default: false },
    verbose: { type: 'boolean', default: false },
  },
});
const cfg = {
  messages: Number(opt.messages),
  conversations: Math.max(1, Number(opt.conversations)),
  expired: Number(opt.expired),
  perConversation: Math.max(1, Number(opt['per-conversation'])),
  users: Math.max(1, Number(opt.users)),
  loadClients: Number(opt['load-clients']),
  pollMs: Number(opt['poll-ms']),
  exportTimeoutMs: Number(opt['export-timeout']) * 1000,
  only: new Set(opt.only.split(',').map((s) => s.trim())),
};
const GOAL = { exportSeconds: 10, erasureSeconds: 30, purgeRowsPerSecond: 50_000 };

const PG_ADMIN = new URL(process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
const NATS_URL = process.env.BENCH_NATS_URL ?? 'nats://127.0.0.1:4222';
const random = randomBytes(4).toString('hex');
const PREFIX = `benchpriv_${random}`;
const DATABASE = `ally_bench_privacy_${random}`;
const PASSWORD = 'Sommerwiese am Fluss 2026';
const HIGH = '10000000';
const RETENTION_DAYS = 30;

const log = (line) => console.log(`[bench-privacy] ${line}`);

// ---------------------------------------------------------------- the world

const pids = {};
const world = createBenchWorld({ tag: 'bench-privacy', prefix: PREFIX, database: DATABASE, pgAdmin: PG_ADMIN, natsUrl: NATS_URL, verbose: opt.verbose, stopOrder: ['gateway', 'privacy', 'chat', 'billing', 'notify', 'identity'] });
const { children, start, runToEnd, waitReady, admin, cleanup } = world;

// ---------------------------------------------------------------- the run

const results = {
  date: new Date().toISOString(),
  machine: machine(),
  commit: gitCommit(),
  command: commandLine('privacy.mjs'),
  setup: {
    nodeEnv: 'test',
    logLevel: 'warn',
    privacyPollMs: cfg.pollMs,
    subject: { messages: cfg.messages, conversations: cfg.conversations },
    retention: { expiredMessages: cfg.expired, messagesPerConversation: cfg.perConversation, users: cfg.users, orgRetentionDays: RETENTION_DAYS, loadClients: cfg.loadClients },
    note: 'emulators, identity, chat, billing, notify, privacy, gateway, Postgres, NATS and the load generator (this process) share the machine',
  },
  goal: GOAL,
};

let ctx;

async function setUp() {
  const { common, db } = await world.prepare({ noBuild: opt['no-build'] });
  const port = {};
  for (const name of ['openai', 'stripe', 'brevo', 'identity', 'chat', 'billing', 'notify', 'privacy', 'gateway']) port[name] = await freePort();
  const url = (name) => `http://127.0.0.1:${port[name]}`;
  const stripeSecret = `whsec_bench_${random}`;
  const env = {
    identity: { ...common, HTTP_PORT: String(port.identity), ...db('identity'), LOGIN_MAX_FAILURES_PER_ACCOUNT: HIGH, LOGIN_MAX_FAILURES_PER_IP: HIGH },
    chat: {
      ...common,
      HTTP_PORT: String(port.chat),
      ...db('chat'),
      MODEL_CATALOG_FILE: join(root, 'services/chat/config/models.dev.json'),
      OPENAI_EMULATOR_URL: url('openai'),
      CHAT_KEK: randomBytes(32).toString('base64'),
      QUOTA_PROVIDER: 'none',
    },
    billing: { ...common, HTTP_PORT: String(port.billing), ...db('billing'), PLANS_FILE: join(root, 'services/billing/config/plans.json'), STRIPE_API_URL: url('stripe'), STRIPE_WEBHOOK_SECRET: stripeSecret },
    notify: { ...common, HTTP_PORT: String(port.notify), ...db('notify'), BREVO_BASE_URL: `${url('brevo')}/v3` },
    privacy: {
      ...common,
      HTTP_PORT: String(port.privacy),
      ...db('privacy'),
      PRIVACY_KEK: randomBytes(32).toString('base64'),
      PRIVACY_SUBJECT_SALT: randomBytes(16).toString('hex'),
      PRIVACY_POLL_MS: String(cfg.pollMs),
      RETENTION_RUNNER: 'in-process',
    },
    gateway: { ...common, HTTP_PORT: String(port.gateway), GATEWAY_PORT: String(port.gateway), RATE_LIMIT_PER_MINUTE: HIGH, AUTH_RATE_LIMIT_PER_MINUTE: HIGH },
  };
  const emu = (name) => join(root, 'tools/emulators/dist', name, 'main.js');
  const emulators = [
    start('openai-emulator', [emu('openai')], { PATH: process.env.PATH, OPENAI_EMULATOR_PORT: String(port.openai), OPENAI_EMULATOR_TOKEN_MS: '2' }),
    start('stripe-emulator', [emu('stripe')], { PATH: process.env.PATH, STRIPE_EMULATOR_PORT: String(port.stripe), STRIPE_EMULATOR_WEBHOOK_URL: `${url('gateway')}/v1/webhooks/stripe`, STRIPE_EMULATOR_WEBHOOK_SECRET: stripeSecret }),
    start('brevo-emulator', [emu('brevo')], { PATH: process.env.PATH, BREVO_EMULATOR_PORT: String(port.brevo) }),
  ];
  await waitReady(emulators[0], `${url('openai')}/v1/models`);
  for (const [e, name] of [[emulators[1], 'stripe'], [emulators[2], 'brevo']]) await waitReady(e, url(name));

  const mainOf = (svc) => join(root, 'services', svc, 'dist', 'main.js');
  await Promise.all(['identity', 'chat', 'billing', 'notify', 'privacy'].map(async (svc) => log((await runToEnd(`${svc} migrate`, [mainOf(svc), 'migrate'], env[svc])).trim() || `${svc} migrated`)));
  for (const svc of ['identity', 'chat', 'billing', 'notify', 'privacy', 'gateway']) {
    const child = start(svc, [mainOf(svc)], env[svc]);
    await waitReady(child, `${url(svc)}/health/ready`);
    pids[svc] = [child.pid];
  }
  const base = url('gateway');
  log(`services up; gateway ${base}`);

  // The compliance user: registered, granted the role with identity's CLI, logged in.
  const coraEmail = `bench-compliance-${random}@example.eu`;
  const cora = await json('POST', `${base}/v1/auth/register`, { email: coraEmail, password: PASSWORD, firstName: 'Cora', lastName: 'Compliance', locale: 'en' });
  if (cora.status !== 201) throw new Error(`register answered ${cora.status}: ${JSON.stringify(cora.body)}`);
  await runToEnd('identity grant-role', [mainOf('identity'), 'grant-role', coraEmail, 'compliance'], env.identity);
  const login = await json('POST', `${base}/v1/auth/login`, { email: coraEmail, password: PASSWORD });
  if (login.status !== 200) throw new Error(`login answered ${login.status}: ${JSON.stringify(login.body)}`);
  ctx = { base, compliance: login.body.accessToken, sql: (text, params) => admin((c) => c.query(text, params), DATABASE) };
}

async function register(email, firstName) {
  const r = await json('POST', `${ctx.base}/v1/auth/register`, { email, password: PASSWORD, firstName, lastName: 'Bench', locale: 'en' });
  if (r.status !== 201) throw new Error(`register answered ${r.status}: ${JSON.stringify(r.body)}`);
  return { id: r.body.user.id, token: r.body.accessToken, email };
}

async function newConversation(token, workspace = 'private') {
  const r = await json('POST', `${ctx.base}/v1/conversations`, { workspace, title: 'Bench conversation' }, token);
  if (r.status !== 201) throw new Error(`POST /v1/conversations answered ${r.status}: ${JSON.stringify(r.body)}`);
  return r.body.id;
}

async function post(token, conversation, content) {
  const t0 = performance.now();
  const r = await json('POST', `${ctx.base}/v1/conversations/${conversation}/messages`, { content }, token);
  return { ok: r.status === 201, status: r.status, ms: performance.now() - t0, body: r.body };
}

/** Polls until the request is `completed` or `failed`; as the subject, or (after an erasure logs them out) as compliance. */
async function settled(id, token, admin = false, timeoutMs = 300_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (admin) {
      for (const status of ['completed', 'failed']) {
        const r = await json('GET', `${ctx.base}/v1/admin/privacy/requests?status=${status}&limit=100`, undefined, ctx.compliance);
        const found = r.body?.data?.find((x) => x.id === id);
        if (found) return found;
      }
    } else {
      const r = await json('GET', `${ctx.base}/v1/privacy/requests/${id}`, undefined, token);
      if (r.body?.status === 'completed' || r.body?.status === 'failed') return r.body;
    }
    await sleep(50);
  }
  throw new Error(`privacy request ${id} did not settle within ${timeoutMs / 1000} s`);
}

const stepTimes = (request) =>
  Object.fromEntries((request.steps ?? []).map((s) => [s.service, s.status]));

async function requests() {
  const subject = await register(`bench-subject-${random}@example.eu`, 'Subject');
  // A few real messages: chat seals them (and the title) under the subject's data key.
  const first = await newConversation(subject.token);
  for (let i = 0; i < 3; i++) {
    const r = await post(subject.token, first, `#tokens=20 Frage ${i} zur Reiseplanung`);
    if (!r.ok) throw new Error(`posting a message answered ${r.status}: ${JSON.stringify(r.body)}`);
  }
  const t0 = performance.now();
  await ctx.sql(
    `INSERT INTO chat.conversations (id, user_id, workspace, title_enc, created_at, updated_at)
     SELECT gen_random_uuid(), c.user_id, c.workspace, c.title_enc, c.created_at - make_interval(mins => g), c.updated_at - make_interval(mins => g)
       FROM chat.conversations c, generate_series(1, $2::int - 1) g WHERE c.id = $1`,
    [first, cfg.conversations],
  );
  const [{ n: have }] = (await ctx.sql(`SELECT count(*)::int AS n FROM chat.messages WHERE user_id = $1`, [subject.id])).rows;
  await ctx.sql(
    `WITH convs AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS i FROM chat.conversations WHERE user_id = $1),
          src AS (SELECT m.*, row_number() OVER (ORDER BY created_at, id) - 1 AS j FROM chat.messages m WHERE user_id = $1)
     INSERT INTO chat.messages (id, conversation_id, user_id, role, content_enc, model, prompt_tokens, completion_tokens, residency, status, created_at)
     SELECT gen_random_uuid(), convs.id, src.user_id, src.role, src.content_enc, src.model, src.prompt_tokens, src.completion_tokens, src.residency, src.status,
            src.created_at - make_interval(secs => g)
       FROM generate_series(1, $2::int) g
       JOIN src ON src.j = g % $3
       JOIN convs ON convs.i = g % $4`,
    [subject.id, cfg.messages - have, have, cfg.conversations],
  );
  await ctx.sql(`ANALYZE chat.messages`);
  const [{ n: total }] = (await ctx.sql(`SELECT count(*)::int AS n FROM chat.messages WHERE user_id = $1`, [subject.id])).rows;
  log(`subject ${subject.id}: ${total} messages in ${cfg.conversations} conversations (seeded in ${Math.round(performance.now() - t0)} ms)`);

  // Access request.
  let t = performance.now();
  const access = await json('POST', `${ctx.base}/v1/privacy/requests`, { type: 'access' }, subject.token);
  if (access.status !== 202) throw new Error(`access request answered ${access.status}: ${JSON.stringify(access.body)}`);
  const exported = await settled(access.body.id, subject.token, false, cfg.exportTimeoutMs).catch(async (err) => {
    // Not settled: record where it stands (a step retrying after a timeout) and go on with the erasure.
    const r = await json('GET', `${ctx.base}/v1/privacy/requests/${access.body.id}`, undefined, subject.token);
    log(`access: ${err.message}; steps: ${JSON.stringify(r.body?.steps)}`);
    return { ...r.body, timedOut: true };
  });
  const exportMs = performance.now() - t;
  if (exported.timedOut) {
    results.requests = { messages: total, conversations: cfg.conversations, export: { seconds: null, timedOutAfterSeconds: round(exportMs / 1000), status: exported.status, steps: exported.steps } };
  } else if (exported.status !== 'completed') throw new Error(`the access request ended ${exported.status}: ${JSON.stringify(exported.steps)}`);
  if (!exported.timedOut) {
    const pkg = await json('GET', `${ctx.base}/v1/privacy/requests/${access.body.id}/download?format=json`, undefined, subject.token);
    const history = pkg.body?.files?.['data/chat.json']?.categories?.['chat-history'] ?? {};
    const conversations = history.conversations ?? [];
    const exportedMessages = history.messages?.length ?? 0;
    const packageBytes = Buffer.byteLength(JSON.stringify(pkg.body));
    log(`access: completed in ${round(exportMs / 1000)} s; package holds ${exportedMessages} messages in ${conversations.length} conversations (${round(packageBytes / 2 ** 20)} MiB as JSON)`);
    if (exportedMessages !== total) throw new Error(`the export holds ${exportedMessages} messages, not ${total}`);
    results.requests = { messages: total, conversations: cfg.conversations, export: { seconds: round(exportMs / 1000), messagesInPackage: exportedMessages, packageJsonMiB: round(packageBytes / 2 ** 20), steps: stepTimes(exported) } };
  }

  // Erasure.
  t = performance.now();
  const erasure = await json('POST', `${ctx.base}/v1/privacy/requests`, { type: 'erasure' }, subject.token);
  if (erasure.status !== 202) throw new Error(`erasure request answered ${erasure.status}: ${JSON.stringify(erasure.body)}`);
  const erased = await settled(erasure.body.id, undefined, true);
  const erasureMs = performance.now() - t;
  if (erased.status !== 'completed') throw new Error(`the erasure ended ${erased.status}: ${JSON.stringify(erased.steps)}`);
  const [{ n: left }] = (await ctx.sql(`SELECT count(*)::int AS n FROM chat.messages WHERE user_id = $1`, [subject.id])).rows;
  if (left !== 0) throw new Error(`${left} messages of the subject are left after the erasure`);
  const relogin = await json('POST', `${ctx.base}/v1/auth/login`, { email: subject.email, password: PASSWORD });
  log(`erasure: completed in ${round(erasureMs / 1000)} s; messages left 0, login afterwards ${relogin.status}`);

  results.requests.erasure = { seconds: round(erasureMs / 1000), steps: stepTimes(erased), chatResult: erased.steps?.find((s) => s.service === 'chat')?.result, loginAfterwards: relogin.status };
}

async function retention() {
  const orgId = (await ctx.sql(`SELECT gen_random_uuid() AS id`)).rows[0].id;
  const recentOrg = (await ctx.sql(`SELECT gen_random_uuid() AS id`)).rows[0].id;
  const convs = Math.ceil(cfg.expired / cfg.perConversation);
  const keepConvs = Math.max(1, Math.round(convs / 100));
  let t0 = performance.now();
  await ctx.sql(`INSERT INTO chat.org_policies (org_id, chat_retention_days) VALUES ($1, $3), ($2, NULL)`, [orgId, recentOrg, RETENTION_DAYS]);
  // Expired: updated 31..120 days ago in an organisation keeping chats 30 days. Kept: 1 % as many
  // conversations of the same organisation updated within the period, and as many of one without a period.
  const seed = async (org, n, minDays, maxDays) => {
    await ctx.sql(
      `INSERT INTO chat.conversations (id, user_id, workspace, title_enc, created_at, updated_at)
       SELECT gen_random_uuid(), ('00000000-0000-4000-8000-' || lpad(to_hex(g % $2::int), 12, '0'))::uuid, $1::text, decode(md5(g::text), 'hex'), t - interval '1 hour', t
         FROM generate_series(1, $3::int) g, LATERAL (SELECT now() - make_interval(days => $4::int + g % ($5::int - $4::int + 1)) AS t) x`,
      [org, cfg.users, n, minDays, maxDays],
    );
  };
  // Every user a member of both (a former member's business conversations would go a day after their last message).
  await ctx.sql(
    `INSERT INTO chat.memberships (org_id, user_id, role)
     SELECT o, ('00000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid, 'member' FROM unnest(ARRAY[$1::uuid, $2::uuid]) o, generate_series(0, $3::int - 1) g`,
    [orgId, recentOrg, cfg.users],
  );
  await seed(orgId, convs, RETENTION_DAYS + 1, 120);
  await seed(orgId, keepConvs, 0, RETENTION_DAYS - 1);
  await seed(recentOrg, keepConvs, RETENTION_DAYS + 1, 120);
  // perConversation messages each, ~600 bytes of "ciphertext" (nobody decrypts them here).
  await ctx.sql(
    `INSERT INTO chat.messages (id, conversation_id, user_id, role, content_enc, model, prompt_tokens, completion_tokens, created_at)
     SELECT gen_random_uuid(), c.id, c.user_id, CASE WHEN k % 2 = 0 THEN 'user' ELSE 'assistant' END,
            decode(repeat(md5(c.id::text || k), 38), 'hex'), CASE WHEN k % 2 = 1 THEN 'gpt-4o-mini' END,
            CASE WHEN k % 2 = 1 THEN 100 + k END, CASE WHEN k % 2 = 1 THEN 50 END, c.created_at + make_interval(secs => k)
       FROM chat.conversations c, generate_series(0, $2::int - 1) k WHERE c.workspace IN ($1, $3)`,
    [orgId, cfg.perConversation, recentOrg],
  );
  const count = async () => {
    const { rows } = await ctx.sql(
      `SELECT (SELECT count(*)::int FROM chat.conversations WHERE workspace IN ($1, $2)) AS conversations,
              (SELECT count(*)::int FROM chat.messages m JOIN chat.conversations c ON c.id = m.conversation_id WHERE c.workspace IN ($1, $2)) AS messages`,
      [orgId, recentOrg],
    );
    return rows[0];
  };
  await ctx.sql(`VACUUM ANALYZE chat.conversations`);
  await ctx.sql(`VACUUM ANALYZE chat.messages`);
  const before = await count();
  const expected = { conversations: convs, messages: convs * cfg.perConversation };
  log(`seeded ${before.messages} messages in ${before.conversations} conversations (${expected.messages} expired) in ${round((performance.now() - t0) / 1000)} s`);

  // Light chat load: a few clients posting one message after the other, each in its own conversation.
  const loaders = await Promise.all(Array.from({ length: cfg.loadClients }, (_, i) => register(`bench-load-${i}-${random}@example.eu`, `Load ${String.fromCharCode(65 + (i % 26))}`)));
  for (const u of loaders) u.conversation = await newConversation(u.token);
  let stop = false;
  const load = { during: [], failures: [] };
  let running = false;
  const loops = loaders.map(async (u, c) => {
    for (let i = 0; !stop; i++) {
      if (i > 0 && i % 20 === 0) u.conversation = await newConversation(u.token);
      const r = await post(u.token, u.conversation, `#tokens=20 load ${c} message ${i}`);
      if (!running) continue;
      if (r.ok) load.during.push(r.ms);
      else load.failures.push(`status ${r.status}`);
    }
  });
  await sleep(2_000);
  // Baseline latency without a purge.
  const baseline = [];
  const baseT0 = performance.now();
  while (performance.now() - baseT0 < 3_000) {
    const r = await post(loaders[0].token, loaders[0].conversation, '#tokens=20 baseline');
    if (r.ok) baseline.push(r.ms);
  }

  running = true;
  t0 = performance.now();
  const started = await json('POST', `${ctx.base}/v1/admin/privacy/retention-runs`, { dryRun: false, categories: ['chat-history'] }, ctx.compliance);
  if (started.status !== 202) throw new Error(`retention run answered ${started.status}: ${JSON.stringify(started.body)}`);
  let run;
  for (;;) {
    run = (await json('GET', `${ctx.base}/v1/admin/privacy/retention-runs/${started.body.id}`, undefined, ctx.compliance)).body;
    if (run.status === 'completed' || run.status === 'failed') break;
    await sleep(100);
  }
  const wallMs = performance.now() - t0;
  running = false;
  stop = true;
  await Promise.all(loops);
  if (run.status !== 'completed') throw new Error(`the retention run ended ${run.status}: ${JSON.stringify(run.errors)}`);
  const after = await count();
  const deleted = { conversations: before.conversations - after.conversations, messages: before.messages - after.messages };
  const runMs = new Date(run.finishedAt) - new Date(run.startedAt);
  const rows = deleted.conversations + deleted.messages;
  const during = [...load.during].sort((a, b) => a - b);
  const base = [...baseline].sort((a, b) => a - b);
  results.retention = {
    expired: expected,
    deleted,
    exact: deleted.conversations === expected.conversations && deleted.messages === expected.messages,
    reported: run.results,
    runSeconds: round(runMs / 1000),
    wallSeconds: round(wallMs / 1000),
    rowsPerSecond: Math.round(rows / (runMs / 1000)),
    messagesPerSecond: Math.round(deleted.messages / (runMs / 1000)),
    chatDuringRun: { messages: during.length, failed: load.failures.length, p50Ms: round(pct(during, 50)), p99Ms: round(pct(during, 99)), maxMs: round(during.at(-1)) },
    chatBaseline: { messages: base.length, p50Ms: round(pct(base, 50)), p99Ms: round(pct(base, 99)) },
  };
  log(
    `retention: deleted ${deleted.messages} messages + ${deleted.conversations} conversations in ${round(runMs / 1000)} s (run), ${round(wallMs / 1000)} s (wall) → ` +
      `${results.retention.rowsPerSecond} rows/s (${results.retention.messagesPerSecond} messages/s); exact: ${results.retention.exact}`,
  );
  log(`chat meanwhile: ${during.length} messages (${load.failures.length} failed), p50 ${round(pct(during, 50))} ms, p99 ${round(pct(during, 99))} ms (before: p50 ${round(pct(base, 50))}, p99 ${round(pct(base, 99))})`);
  if (!results.retention.exact) throw new Error(`the run deleted ${JSON.stringify(deleted)}, expected ${JSON.stringify(expected)}`);
}

let exitCode = 0;
try {
  await setUp();
  if (cfg.only.has('requests')) await requests();
  if (cfg.only.has('retention')) await retention();
  results.goalsMet = {
    ...(results.requests ? { export: results.requests.export.seconds !== null && results.requests.export.seconds < GOAL.exportSeconds, erasure: results.requests.erasure.seconds < GOAL.erasureSeconds } : {}),
    ...(results.retention ? { purge: results.retention.rowsPerSecond > GOAL.purgeRowsPerSecond } : {}),
  };
  const g = results.goalsMet;
  console.log(
    `\nGoals: ` +
      [
        results.requests && `export ${results.requests.export.seconds ?? `not done after ${results.requests.export.timedOutAfterSeconds}`} s < ${GOAL.exportSeconds}: ${g.export ? 'met' : 'MISSED'}`,
        results.requests && `erasure ${results.requests.erasure.seconds} s < ${GOAL.erasureSeconds}: ${g.erasure ? 'met' : 'MISSED'}`,
        results.retention && `purge ${results.retention.rowsPerSecond} rows/s > ${GOAL.purgeRowsPerSecond}: ${g.purge ? 'met' : 'MISSED'}`,
      ]
        .filter(Boolean)
        .join('; '),
  );
  console.log(`${results.machine.nproc} CPUs (${results.machine.cpu}), Node ${results.machine.node}, ${results.date}, commit ${results.commit ?? '?'}`);
  await mkdir(join(root, '.tmp'), { recursive: true });
  await writeFile(join(root, '.tmp', 'bench-privacy.json'), `${JSON.stringify(results, null, 2)}\n`);
  log('results written to .tmp/bench-privacy.json');
  if (opt.keep) {
    log(`--keep: gateway on ${ctx.base}; Ctrl-C to stop and clean up`);
    await new Promise(() => undefined);
  }
} catch (err) {
  console.error(`[bench-privacy] failed: ${err?.stack ?? err}`);
  exitCode = 1;
} finally {
  await cleanup();
  log('cleaned up');
}
process.exit(exitCode);
