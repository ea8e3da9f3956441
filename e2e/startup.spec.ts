import { afterAll, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { billingService } from '@ally/billing';
import { chatService } from '@ally/chat';
import { gatewayService } from '@ally/gateway';
import { migrate } from '@ally/platform';
import { createTestEnv, freePort, PrivateNatsServer, type TestEnv } from '@ally/testing';

/** Runs a command of the built platform (npm test builds first) and collects what it printed. */
function run(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 30_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

const lines = (s: string) => s.split('\n').filter((l) => l.trim());

describe('starting with a dependency missing', () => {
  it('npm start names a stopped Postgres in one line and exits', async () => {
    const port = await freePort();
    const r = await run(['tools/scripts/start.mjs'], { DATABASE_ADMIN_URL: `postgres://postgres@127.0.0.1:${port}/ally` });
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toEqual([`Postgres is not running on 127.0.0.1:${port}: start it with \`pg_ctlcluster 15 main start\` (or point DATABASE_ADMIN_URL at one).`]);
  });

  it('npm start names a stopped NATS in one line and exits', async () => {
    const port = await freePort();
    const r = await run(['tools/scripts/start.mjs'], { NATS_URL: `nats://127.0.0.1:${port}` });
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toEqual([`NATS is not running on 127.0.0.1:${port}: start it with \`nats-server -js\` (JetStream on) or set NATS_URL.`]);
  });

  it('a service names a stopped NATS in one line, without a stack trace', async () => {
    const port = await freePort();
    const r = await run(['services/identity/dist/main.js'], {
      DATABASE_URL: 'postgres://ally_identity@127.0.0.1:5432/ally',
      NATS_URL: `nats://127.0.0.1:${port}`,
    });
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toHaveLength(1);
    expect(r.stderr).toMatch(new RegExp(`^identity: NATS is not reachable at nats://127.0.0.1:${port} .*start it with \`nats-server -js\``));
  });

  it('npm start names a malformed GATEWAY_PORT in one line before building anything', async () => {
    const r = await run(['tools/scripts/start.mjs'], { GATEWAY_PORT: 'abc' });
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toEqual(['GATEWAY_PORT must be a port number (0-65535), not "abc".']);
  });

  it('npm start refuses, in one line, a port another process already answers on (a second npm start would share it)', async () => {
    const taken = createServer().listen(0, '127.0.0.1');
    await once(taken, 'listening');
    const port = (taken.address() as AddressInfo).port;
    try {
      const r = await run(['tools/scripts/start.mjs'], { GATEWAY_PORT: String(port) });
      expect(r.code).toBe(1);
      expect(lines(r.stderr)).toEqual([`Port ${port} (gateway) is already in use: if Ally is running, stop it (Ctrl-C where it runs); if another program holds it, set GATEWAY_PORT (the ports 8101-8105 and 8125-8127 must be free too).`]);
    } finally {
      taken.close();
    }
  });

  it('npm start names a NATS without JetStream in one line, before building or migrating anything', async () => {
    const nats = new PrivateNatsServer();
    await nats.start(['-js=false']);
    try {
      const r = await run(['tools/scripts/start.mjs'], { NATS_URL: nats.url, GATEWAY_PORT: String(await freePort()) });
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(lines(r.stderr)).toEqual([`NATS at ${nats.url} runs without JetStream: restart it with \`nats-server -js\` (or set NATS_URL to one that has it).`]);
    } finally {
      await nats.destroy();
    }
  });

  it('npm start names a malformed NATS_URL or DATABASE_ADMIN_URL in one line, without a stack trace', async () => {
    const nats = await run(['tools/scripts/start.mjs'], { NATS_URL: 'localhost:4222' });
    expect(nats.code).toBe(1);
    expect(lines(nats.stderr)).toEqual(['NATS_URL must look like nats://127.0.0.1:4222, not "localhost:4222".']);
    const pg = await run(['tools/scripts/start.mjs'], { DATABASE_ADMIN_URL: 'garbage' });
    expect(pg.code).toBe(1);
    expect(lines(pg.stderr)).toEqual(['DATABASE_ADMIN_URL must look like postgres://postgres@127.0.0.1:5432/ally, not "garbage".']);
  });

  it('a service names a NATS without JetStream in one line, with what to do', async () => {
    const nats = new PrivateNatsServer();
    await nats.start(['-js=false']);
    try {
      const r = await run(['services/identity/dist/main.js'], { DATABASE_URL: 'postgres://ally_identity@127.0.0.1:5432/no_such_database', NATS_URL: nats.url });
      expect(r.code).toBe(1);
      expect(lines(r.stderr)).toEqual([`identity: NATS at ${nats.url} runs without JetStream: start nats-server with -js`]);
    } finally {
      await nats.destroy();
    }
  });

  it('a service names a missing or malformed variable in one line', async () => {
    const missing = await run(['services/identity/dist/main.js'], {});
    expect(missing.code).toBe(1);
    expect(lines(missing.stderr)).toEqual(['identity: Configuration error: DATABASE_URL is missing']);

    const malformed = await run(['services/identity/dist/main.js'], { DATABASE_URL: 'mysql://x', ARGON2_MEMORY_KIB: '1024' });
    expect(malformed.code).toBe(1);
    expect(lines(malformed.stderr)).toEqual(['identity: Configuration error: DATABASE_URL must be a postgres:// URL']);

    const weak = await run(['services/identity/dist/main.js'], { DATABASE_URL: 'postgres://x@127.0.0.1/ally', ARGON2_MEMORY_KIB: '1024' });
    expect(lines(weak.stderr)).toEqual([expect.stringMatching(/^identity: Configuration error: ARGON2_MEMORY_KIB /)]);
  });

  it('billing and notify without credentials in development need the emulator\'s URL, instead of sending to Stripe or Brevo with no key', async () => {
    const billing = await run(['services/billing/dist/main.js'], { NODE_ENV: 'development', DATABASE_URL: 'postgres://ally_billing@127.0.0.1:5432/ally', PLANS_FILE: 'services/billing/config/plans.json' });
    expect(billing.code).toBe(1);
    expect(lines(billing.stderr)).toEqual([expect.stringMatching(/^billing: Configuration error: STRIPE_API_URL is required without STRIPE_SECRET_KEY/)]);
    const notify = await run(['services/notify/dist/main.js'], { NODE_ENV: 'development', DATABASE_URL: 'postgres://ally_notify@127.0.0.1:5432/ally' });
    expect(notify.code).toBe(1);
    expect(lines(notify.stderr)).toEqual([expect.stringMatching(/^notify: Configuration error: BREVO_BASE_URL is required without BREVO_API_KEY/)]);
  });

  it('billing refuses to start in production without the key of its pseudonyms', async () => {
    const r = await run(['services/billing/dist/main.js'], {
      NODE_ENV: 'production',
      DATABASE_URL: 'postgres://ally_billing@127.0.0.1:5432/ally',
      PLANS_FILE: 'services/billing/config/plans.json',
      STRIPE_SECRET_KEY: 'sk_live_test',
      STRIPE_WEBHOOK_SECRET: 'whsec_test',
    });
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toEqual(['billing: Configuration error: BILLING_PSEUDONYM_KEY is required in production']);
  });

  it('privacy refuses to start in production without the key of its audit trail', async () => {
    const r = await run(['services/privacy/dist/main.js'], {
      NODE_ENV: 'production',
      DATABASE_URL: 'postgres://ally_privacy@127.0.0.1:5432/ally',
      PRIVACY_KEK: Buffer.alloc(32, 7).toString('base64'),
      PRIVACY_SUBJECT_SALT: 'a-subject-salt-of-32-characters!',
    });
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toEqual(['privacy: Configuration error: PRIVACY_AUDIT_KEY is required in production']);
  });

  it('notify refuses to start in production without Brevo credentials', async () => {
    const r = await run(['services/notify/dist/main.js'], { NODE_ENV: 'production', DATABASE_URL: 'postgres://ally_notify@127.0.0.1:5432/ally' });
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toEqual(['notify: Configuration error: BREVO_API_KEY is required in production']);
    // Nor without the compliance team's address: an escalated request would reach no one.
    const withoutCompliance = await run(['services/notify/dist/main.js'], {
      NODE_ENV: 'production',
      DATABASE_URL: 'postgres://ally_notify@127.0.0.1:5432/ally',
      BREVO_API_KEY: 'xkeysib-test',
      BREVO_WEBHOOK_SECRET: 'a-webhook-secret-of-16+',
      NOTIFY_ADDRESS_KEY: 'an-address-key-of-32-characters!',
    });
    expect(withoutCompliance.code).toBe(1);
    expect(lines(withoutCompliance.stderr)).toEqual(['notify: Configuration error: COMPLIANCE_EMAIL is required in production']);
    // Nor without the key of the hashes it keeps instead of addresses (a development key is one anybody can read here).
    const withoutAddressKey = await run(['services/notify/dist/main.js'], {
      NODE_ENV: 'production',
      DATABASE_URL: 'postgres://ally_notify@127.0.0.1:5432/ally',
      BREVO_API_KEY: 'xkeysib-test',
      BREVO_WEBHOOK_SECRET: 'a-webhook-secret-of-16+',
      COMPLIANCE_EMAIL: 'compliance@example.eu',
    });
    expect(withoutAddressKey.code).toBe(1);
    expect(lines(withoutAddressKey.stderr)).toEqual(['notify: Configuration error: NOTIFY_ADDRESS_KEY is required in production']);
    // Nor with the links of its mails (which carry tokens) pointing at localhost or at the manifests' placeholder host.
    const complete = {
      NODE_ENV: 'production',
      DATABASE_URL: 'postgres://ally_notify@127.0.0.1:5432/ally',
      BREVO_API_KEY: 'xkeysib-test',
      BREVO_WEBHOOK_SECRET: 'a-webhook-secret-of-16+',
      COMPLIANCE_EMAIL: 'compliance@ally-kunde.de',
      NOTIFY_ADDRESS_KEY: 'an-address-key-of-32-characters!',
    };
    for (const [extra, line] of [
      [{}, 'PUBLIC_BASE_URL must be the deployment\'s public address in production, not localhost'],
      [{ PUBLIC_BASE_URL: 'https://app.ally.example.eu' }, 'PUBLIC_BASE_URL is still a placeholder (app.ally.example.eu): put in the deployment\'s public address'],
      [{ PUBLIC_BASE_URL: 'http://ally.ally-kunde.de' }, 'PUBLIC_BASE_URL must use https in production'],
      [{ PUBLIC_BASE_URL: 'https://ally.ally-kunde.de', MAIL_SENDER_EMAIL: 'no-reply@ally.example.eu' }, 'MAIL_SENDER_EMAIL is still a placeholder (ally.example.eu): put in a sender of your domain, verified in Brevo'],
    ] as const) {
      const r = await run(['services/notify/dist/main.js'], { ...complete, ...extra });
      expect({ code: r.code, lines: lines(r.stderr) }).toEqual({ code: 1, lines: [`notify: Configuration error: ${line}`] });
    }
  });
});

describe('a one-off command', () => {
  let env: TestEnv | undefined;
  afterAll(async () => {
    await env?.close();
  });

  it('answers bad arguments with its usage in one line, and prints its output as it is', async () => {
    env = await createTestEnv();
    const vars = { PLANS_FILE: 'services/billing/config/plans.json', STRIPE_API_URL: 'http://127.0.0.1:9' };
    await env.migrate(billingService, vars);
    const base = { ...env.envFor(billingService, vars), LOG_LEVEL: 'error' };
    const bad = await run(['services/billing/dist/main.js', 'export-invoices', '2026-13'], base);
    expect(bad.code).toBe(1);
    expect(lines(bad.stderr)).toEqual(['billing export-invoices: usage: export-invoices <YYYY-MM>: a month such as 2026-10, not "2026-13"']);
    const good = await run(['services/billing/dist/main.js', 'export-invoices', '2026-10'], base);
    expect(good.code).toBe(0);
    expect(good.stdout).toBe('invoice_number;date;net;tax;gross;currency;customer_reference\n');
    // Asked for help, it names its commands; the gateway, which keeps no database, says there is nothing to migrate.
    const help = await run(['services/billing/dist/main.js', '--help'], base);
    expect({ code: help.code, out: lines(help.stdout) }).toEqual({ code: 0, out: [expect.stringMatching(/^usage: node services\/billing\/dist\/main\.js \[command\].*commands: migrate, .*export-invoices/)] });
    const gateway = await run(['services/gateway/dist/main.js', 'migrate'], base);
    expect({ code: gateway.code, out: lines(gateway.stdout) }).toEqual({ code: 0, out: ['gateway: keeps no database, nothing to migrate'] });
  });

  it('logs on stderr, so its stdout is its answer alone (`export-invoices … > invoices.csv`), also at LOG_LEVEL=info as in the cluster', async () => {
    const vars = { PLANS_FILE: 'services/billing/config/plans.json', STRIPE_API_URL: 'http://127.0.0.1:9', LOG_LEVEL: 'info' };
    const r = await run(['services/billing/dist/main.js', 'export-invoices', '2026-10'], { ...env!.envFor(billingService, vars), NODE_ENV: 'development' });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('invoice_number;date;net;tax;gross;currency;customer_reference\n');
    // The development key's warning and Nest's start-up lines went to stderr.
    expect(r.stderr).toContain('BILLING_PSEUDONYM_KEY');
  });

  it('chat refuses to start with a CHAT_KEK that does not open its stored data keys', async () => {
    env ??= await createTestEnv();
    const vars = { CHAT_KEK: Buffer.alloc(32, 7).toString('base64'), QUOTA_PROVIDER: 'none', MODEL_CATALOG_FILE: 'services/chat/config/models.dev.json', OPENAI_EMULATOR_URL: 'http://127.0.0.1:9' };
    await env.migrate(chatService, vars);
    // A data key wrapped under another KEK (here: bytes no key opens), as after a mistyped or changed CHAT_KEK.
    await env.sql(`INSERT INTO chat.data_keys (user_id, wrapped) VALUES (gen_random_uuid(), $1)`, [Buffer.alloc(60, 1)]);
    const r = await run(['services/chat/dist/main.js'], { ...env.envFor(chatService, vars), NODE_ENV: 'development' });
    expect({ code: r.code, lines: lines(r.stderr).filter((l) => l.startsWith('chat:')) }).toEqual({
      code: 1,
      lines: ['chat: CHAT_KEK does not open the stored data keys: start chat with the key they were wrapped with (chat content cannot be read without it)'],
    });
  });

  it("billing refuses to start in production with the cluster's plans file whose price ids are still placeholders", async () => {
    const vars = { PLANS_FILE: 'k8s/base/billing-plans.json', STRIPE_SECRET_KEY: 'sk_live_test', STRIPE_WEBHOOK_SECRET: 'whsec_test', BILLING_PSEUDONYM_KEY: 'a-pseudonym-key-of-32-characters' };
    // Where Stripe sends the customer back: the deployment's own address, not localhost (the default) nor the manifests' placeholder.
    const local = await run(['services/billing/dist/main.js'], { ...env!.envFor(billingService, vars), NODE_ENV: 'production' });
    expect({ code: local.code, lines: lines(local.stderr) }).toEqual({ code: 1, lines: ["billing: Configuration error: PUBLIC_BASE_URL must be the deployment's public address in production, not localhost"] });
    // A test-mode key hands out paid plans for test cards: only a staging deployment that says so runs with one.
    const testKey = await run(['services/billing/dist/main.js'], { ...env!.envFor(billingService, { ...vars, STRIPE_SECRET_KEY: 'sk_test_staging', PUBLIC_BASE_URL: 'https://ally.ally-kunde.de' }), NODE_ENV: 'production' });
    expect({ code: testKey.code, lines: lines(testKey.stderr) }).toEqual({
      code: 1,
      lines: ['billing: Configuration error: STRIPE_SECRET_KEY is a test-mode key: production takes live keys (sk_live_…), or STRIPE_ALLOW_TEST_KEYS=true for a staging deployment'],
    });
    const r = await run(['services/billing/dist/main.js'], { ...env!.envFor(billingService, { ...vars, PUBLIC_BASE_URL: 'https://ally.ally-kunde.de' }), NODE_ENV: 'production' });
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toEqual(['billing: Configuration error: PLANS_FILE k8s/base/billing-plans.json still has the placeholder price id of plan "team": put in its Stripe price id']);
  });
});

describe('stopping', () => {
  it('finishes its shutdown and exits 0 when SIGTERM comes twice (a process group, then its parent)', async () => {
    const env = await createTestEnv();
    try {
      const child = spawn(process.execPath, ['services/gateway/dist/main.js'], {
        env: { PATH: process.env.PATH ?? '', ...env.envFor(gatewayService, { HTTP_PORT: String(await freePort()) }), LOG_LEVEL: 'info' },
      });
      let stdout = '';
      child.stdout.on('data', (d) => (stdout += d));
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      for (let i = 0; i < 200 && !stdout.includes('gateway started'); i++) await new Promise((r) => setTimeout(r, 50));
      expect(stdout).toContain('gateway started');
      child.kill('SIGTERM');
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(stdout).toContain('gateway stopped');
    } finally {
      await env.close();
    }
  });
});

describe('migrating', () => {
  it('migrates a schema once when two pods migrate it at the same moment: one runs the migrations, the other waits and finds none pending', async () => {
    const env = await createTestEnv();
    try {
      const vars = env.envFor(billingService, { PLANS_FILE: 'services/billing/config/plans.json', STRIPE_API_URL: 'http://127.0.0.1:9' });
      const ran = await Promise.all([migrate(billingService, vars), migrate(billingService, vars)]);
      const counts = ran.map((r) => r.length).sort((a, b) => a - b);
      expect(counts[0]).toBe(0);
      expect(counts[1]).toBeGreaterThan(5);
    } finally {
      await env.close();
    }
  });
});
