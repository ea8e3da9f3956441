#!/usr/bin/env node
// `npm start`: checks Postgres and NATS, builds, migrates, and runs every service
// in development mode; the gateway answers on http://localhost:3000.
// `npm start -- --fresh` forgets what earlier starts kept before it begins.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { connect as connectNats, credsAuthenticator } from '@nats-io/transport-node';
import { build } from './build.mjs';
import { jetStreamOf, postgresVersions, reachable } from './infra.mjs';
import { SERVICE_NODE_FLAGS } from './node-flags.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
/** A variable that must be a URL of `protocols`, or one line naming it (never a stack trace). */
function urlFrom(name, fallback, protocols, example) {
  const value = process.env[name] || fallback;
  let url;
  try {
    url = new URL(value.split(',')[0]);
  } catch {
    url = undefined;
  }
  if (!url || !protocols.includes(url.protocol) || !url.hostname) {
    console.error(`${name} must look like ${example}, not "${value}".`);
    process.exit(1);
  }
  return { url, value };
}
const adminUrl = urlFrom('DATABASE_ADMIN_URL', 'postgres://postgres@127.0.0.1:5432/ally', ['postgres:', 'postgresql:'], 'postgres://postgres@127.0.0.1:5432/ally').url;
const { url: natsHost, value: natsUrl } = urlFrom('NATS_URL', 'nats://127.0.0.1:4222', ['nats:', 'tls:'], 'nats://127.0.0.1:4222');
const database = adminUrl.pathname.slice(1) || 'ally';

/** Start order: services first, the gateway last. HTTP ports for health and metrics. */
const SERVICES = [
  { name: 'identity', port: 8101, database: true },
  { name: 'chat', port: 8102, database: true },
  { name: 'billing', port: 8103, database: true },
  { name: 'privacy', port: 8104, database: true },
  { name: 'notify', port: 8105, database: true },
  { name: 'gateway', port: Number(process.env.GATEWAY_PORT ?? 3000), database: false },
].filter((s) => existsSync(join(root, 'services', s.name, 'src', 'main.ts')));

function fail(line) {
  console.error(line);
  process.exit(1);
}

async function preflight() {
  const gatewayPort = process.env.GATEWAY_PORT;
  if (gatewayPort !== undefined && !(/^\d+$/.test(gatewayPort) && Number(gatewayPort) <= 65535)) {
    fail(`GATEWAY_PORT must be a port number (0-65535), not "${gatewayPort}".`);
  }
  if (!(await reachable({ host: adminUrl.hostname, port: Number(adminUrl.port || 5432) }))) {
    const version = postgresVersions().sort((a, b) => Number(b) - Number(a))[0];
    const how = version ? `start it with \`pg_ctlcluster ${version} main start\`` : 'install it (`npm test` installs and starts it)';
    fail(`Postgres is not running on ${adminUrl.hostname}:${adminUrl.port || 5432}: ${how} (or point DATABASE_ADMIN_URL at one).`);
  }
  if (!(await reachable({ host: natsHost.hostname, port: Number(natsHost.port || 4222) }))) {
    fail(`NATS is not running on ${natsHost.hostname}:${natsHost.port || 4222}: start it with \`nats-server -js\` (JetStream on) or set NATS_URL.`);
  }
  // Every service needs JetStream: say so now, not after building, migrating and starting half the platform.
  const jetstream = await jetStreamOf(() => natsAs('ally-start-preflight', natsUrl));
  if (jetstream !== 'on') {
    fail(
      jetstream === 'off'
        ? `NATS at ${natsUrl} runs without JetStream: restart it with \`nats-server -js\` (or set NATS_URL to one that has it).`
        : `NATS at ${natsUrl} did not answer (${jetstream}): check NATS_URL${process.env.NATS_USER || process.env.NATS_CREDS ? ', NATS_USER/NATS_PASSWORD or NATS_CREDS' : ''}.`,
    );
  }
}

/** A connection to NATS at `url` with the credentials the environment names. */
const natsAs = (name, url = natsUrl) =>
  connectNats({
    servers: url.split(','),
    name,
    user: process.env.NATS_USER || undefined,
    pass: process.env.NATS_PASSWORD || undefined,
    authenticator: process.env.NATS_CREDS ? credsAuthenticator(readFileSync(process.env.NATS_CREDS)) : undefined,
    timeout: 3_000,
  });

/** A client of the Postgres server (its `postgres` database), as the admin role: for what is the server's, not one database's. */
function serverClient() {
  const server = new URL(adminUrl);
  server.pathname = '/postgres';
  return new pg.Client({ connectionString: server.href });
}

async function ensureDatabase() {
  const client = serverClient();
  try {
    await client.connect();
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (found.rowCount === 0) await client.query(`CREATE DATABASE "${database}"`);
  } catch (err) {
    fail(`Postgres at ${adminUrl.host} refused ${adminUrl.username || 'the admin role'}: ${err.message}. Set DATABASE_ADMIN_URL to a role that may create databases and roles.`);
  } finally {
    await client.end().catch(() => undefined);
  }
}

const BREVO_EMULATOR_PORT = 8125;
const brevoEmulated = !process.env.BREVO_API_KEY;
const OPENAI_EMULATOR_PORT = 8126;
// Without a catalog of real deployments, chat uses the development catalog against the emulator.
const modelsEmulated = !process.env.MODEL_CATALOG_FILE;
const STRIPE_EMULATOR_PORT = 8127;
const PLANS_FILE = process.env.PLANS_FILE ?? join(root, 'services/billing/config/plans.json');

/** The plans' Stripe prices as the Stripe emulator takes them (`price_id=unit_amount:currency,…`). */
function stripePrices(plansFile) {
  const { plans } = JSON.parse(readFileSync(plansFile, 'utf8'));
  return plans.filter((p) => p.stripePriceId).map((p) => `${p.stripePriceId}=${p.pricePerSeat}:${p.currency}`).join(',');
}
const stripeEmulated = !process.env.STRIPE_SECRET_KEY;
const STRIPE_DEV_WEBHOOK_SECRET = 'whsec_development_only_not_a_secret';

function serviceEnv(service) {
  const dbUrl = new URL(adminUrl);
  dbUrl.username = `ally_${service.name}`;
  dbUrl.password = `ally_${service.name}`;
  return {
    ...process.env,
    NODE_ENV: process.env.NODE_ENV ?? 'development',
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'info',
    NATS_URL: natsUrl,
    HTTP_PORT: String(service.port),
    ...(service.name === 'gateway' ? { GATEWAY_PORT: String(service.port) } : {}),
    ...(service.name === 'notify' && brevoEmulated ? { BREVO_BASE_URL: `http://127.0.0.1:${BREVO_EMULATOR_PORT}/v3` } : {}),
    ...(service.name === 'notify' ? { BREVO_WEBHOOK_SECRET: process.env.BREVO_WEBHOOK_SECRET ?? 'development-brevo-webhook-secret' } : {}),
    ...(service.name === 'billing'
      ? {
          PLANS_FILE,
          ...(stripeEmulated ? { STRIPE_API_URL: `http://127.0.0.1:${STRIPE_EMULATOR_PORT}`, STRIPE_WEBHOOK_SECRET: STRIPE_DEV_WEBHOOK_SECRET } : {}),
        }
      : {}),
    ...(service.name === 'chat' && modelsEmulated
      ? { MODEL_CATALOG_FILE: join(root, 'services/chat/config/models.dev.json'), OPENAI_EMULATOR_URL: `http://127.0.0.1:${OPENAI_EMULATOR_PORT}` }
      : {}),
    ...(service.database ? { DATABASE_URL: dbUrl.href, DATABASE_ADMIN_URL: adminUrl.href } : {}),
  };
}

/** Every port this platform listens on is free: a second `npm start` (or anything else) would answer in its place. */
async function portsFree() {
  // The gateway's first: the one port a user chooses.
  const ports = [
    ...SERVICES.map((s) => [s.port, s.name]).sort(([, a], [, b]) => Number(b === 'gateway') - Number(a === 'gateway')),
    ...(brevoEmulated ? [[BREVO_EMULATOR_PORT, 'the Brevo emulator']] : []),
    ...(modelsEmulated ? [[OPENAI_EMULATOR_PORT, 'the OpenAI/Azure emulator']] : []),
    ...(stripeEmulated ? [[STRIPE_EMULATOR_PORT, 'the Stripe emulator']] : []),
  ];
  for (const [port, what] of ports) {
    if (port !== 0 && (await reachable({ host: '127.0.0.1', port }, 300))) {
      fail(
        `Port ${port} (${what}) is already in use: if Ally is running, stop it (Ctrl-C where it runs)` +
          (what === 'gateway' ? '; if another program holds it, set GATEWAY_PORT (the ports 8101-8105 and 8125-8127 must be free too).' : '.'),
      );
    }
  }
}

const mainOf = (service) => join(root, 'services', service.name, 'dist', 'main.js');

/**
 * `npm start -- --fresh`: what earlier starts kept goes first (the database,
 * the services' roles, the JetStream streams), as on a machine that never ran Ally.
 */
async function forgetEarlierStarts() {
  const client = serverClient();
  try {
    await client.connect();
    await client.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
    for (const service of SERVICES.filter((s) => s.database)) {
      // Roles are the server's, not the database's: one that owns objects in another database (a start with another DATABASE_ADMIN_URL) stays.
      await client.query(`DROP ROLE IF EXISTS "ally_${service.name}"`).catch((err) => {
        if (err.code !== '2BP01') throw err;
      });
    }
  } catch (err) {
    fail(`Could not forget the database "${database}" of earlier starts: ${err.message}.`);
  } finally {
    await client.end().catch(() => undefined);
  }
  const nc = await natsAs('ally-start-fresh');
  try {
    for (const stream of ['ALLY_EVENTS', 'ALLY_EVENTS_DLQ']) {
      const answer = (await nc.request(`$JS.API.STREAM.DELETE.${stream}`, '', { timeout: 3_000 })).json();
      if (answer.error && answer.error.code !== 404) fail(`Could not delete the JetStream stream ${stream}: ${answer.error.description}.`);
    }
  } finally {
    await nc.close().catch(() => undefined);
  }
  console.log(`--fresh: dropped the database "${database}", the services' roles (unless another database uses them) and the streams ALLY_EVENTS and ALLY_EVENTS_DLQ`);
}

await preflight();
await portsFree();
if (process.argv.includes('--fresh')) await forgetEarlierStarts();
await build();
await ensureDatabase();
for (const service of SERVICES.filter((s) => s.database)) {
  const r = spawnSync(process.execPath, [mainOf(service), 'migrate'], { env: serviceEnv(service), stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

const children = [];
let stopping = false;
/** Stops every child started, and starts no more: a Ctrl-C while Ally is still starting leaves nothing running. */
function stopAll(code) {
  if (stopping) return;
  stopping = true;
  for (const child of children) child.kill('SIGTERM');
  setTimeout(() => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    process.exit(code);
  }, 12_000).unref();
  Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once('exit', r))))).then(() => process.exit(code));
}
process.on('SIGINT', () => stopAll(0));
process.on('SIGTERM', () => stopAll(0));
process.on('SIGHUP', () => stopAll(0));
// Whoever started us is gone (npm killed by an IDE or `timeout`, the terminal closed): stop too, rather than run on unseen.
const parent = process.ppid;
setInterval(() => process.ppid !== parent && stopAll(0), 1_000).unref();

/** A child process, unless stopping has begun (then undefined: nothing new starts). */
function startChild(args, env) {
  if (stopping) return undefined;
  const child = spawn(process.execPath, args, { env, stdio: 'inherit' });
  children.push(child);
  return child;
}

async function startEmulator(main, portVariable, port, extraEnv = {}) {
  if (!startChild([join(root, 'tools/emulators/dist', main)], { ...process.env, [portVariable]: String(port), ...extraEnv })) return;
  for (let i = 0; i < 50 && !stopping && !(await reachable({ host: '127.0.0.1', port })); i++) await new Promise((r) => setTimeout(r, 100));
}
// No Brevo credentials: mail goes to the emulator, readable at GET /v1/dev/mailbox.
if (brevoEmulated) await startEmulator('brevo/main.js', 'BREVO_EMULATOR_PORT', BREVO_EMULATOR_PORT);
// No model catalog: OpenAI and Azure OpenAI are emulated (answers echo the prompt).
if (modelsEmulated && SERVICES.some((s) => s.name === 'chat')) await startEmulator('openai/main.js', 'OPENAI_EMULATOR_PORT', OPENAI_EMULATOR_PORT);
// No Stripe key: the Stripe emulator; its Checkout page "pays" and its webhooks reach the gateway.
if (stripeEmulated && SERVICES.some((s) => s.name === 'billing')) {
  const gatewayPort = SERVICES.find((s) => s.name === 'gateway').port;
  await startEmulator('stripe/main.js', 'STRIPE_EMULATOR_PORT', STRIPE_EMULATOR_PORT, {
    STRIPE_EMULATOR_WEBHOOK_URL: `http://127.0.0.1:${gatewayPort}/v1/webhooks/stripe`,
    STRIPE_EMULATOR_WEBHOOK_SECRET: STRIPE_DEV_WEBHOOK_SECRET,
    // The billing meter usage is reported to, as a Stripe account for Ally would have it.
    STRIPE_EMULATOR_METERS: 'mtr_dev_tokens=ally_tokens:sum',
    // The plans' prices, as the Stripe account has them (Checkout and invoices show what the plan costs).
    STRIPE_EMULATOR_PRICES: stripePrices(PLANS_FILE),
  });
}

for (const service of SERVICES) {
  const child = startChild([...SERVICE_NODE_FLAGS, '--enable-source-maps', mainOf(service)], serviceEnv(service));
  if (!child) break;
  child.on('exit', (code) => {
    if (!stopping) {
      console.error(`${service.name} exited (code ${code}); stopping the others.`);
      stopAll(code || 1);
    }
  });
  // Wait until it is ready before starting the next one, so the gateway finds identity.
  const health = `http://127.0.0.1:${service.port}/health/ready`;
  for (let i = 0; i < 100 && !stopping; i++) {
    const ok = await fetch(health).then((r) => r.ok, () => false);
    if (ok) break;
    await new Promise((r) => setTimeout(r, 200));
  }
}
if (!stopping) {
  const gateway = SERVICES.find((s) => s.name === 'gateway');
  console.log(
    `\nAlly is running: gateway http://localhost:${gateway.port} (OpenAPI at /docs). ` +
      (brevoEmulated ? `No BREVO_API_KEY: mail goes to the Brevo emulator; read it at http://localhost:${gateway.port}/v1/dev/mailbox?to=<email>. ` : '') +
      (modelsEmulated ? 'No MODEL_CATALOG_FILE: models are the OpenAI/Azure emulator, which echoes prompts. ' : '') +
      (stripeEmulated ? `No STRIPE_SECRET_KEY: payments go to the Stripe emulator at http://localhost:${STRIPE_EMULATOR_PORT}.\n` : '\n'),
  );
}
