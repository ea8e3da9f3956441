#!/usr/bin/env node
// Billing benchmark (not a timed test): quota check latency inside billing (QuotaService.check
// in-process) and through NATS RPC, and the ledger's ingest rate of chat.completion.recorded
// events (JetStream → consumer → ledger). Needs `npm run build` and local Postgres/NATS.
//   node tools/bench/billing.mjs [--checks 200000] [--rpc 5000] [--events 20000]
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { jetstream } from '@nats-io/jetstream';
import { BillingRpc, createEnvelope } from '@ally/contracts';
import { billingService } from '@ally/billing';
import { startStripeEmulator } from '@ally/emulators';
import { RpcClient } from '@ally/messaging';
import { createTestEnv } from '@ally/testing';

const { values } = parseArgs({ options: { checks: { type: 'string', default: '200000' }, rpc: { type: 'string', default: '5000' }, events: { type: 'string', default: '20000' } } });
const pct = (xs, p) => xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
const fmt = (ms) => (ms < 0.01 ? `${(ms * 1000).toFixed(2)} µs` : `${ms.toFixed(3)} ms`);

const env = await createTestEnv();
const stripe = await startStripeEmulator({ meters: [{ event_name: 'ally_tokens' }] });
try {
  const billing = await env.start(billingService, {
    PLANS_FILE: 'services/billing/config/plans.json',
    STRIPE_API_URL: stripe.url,
    STRIPE_WEBHOOK_SECRET: stripe.webhookSecret,
    METER_POLL_MS: '1000000', // measure ingest alone, not the Stripe reporting next to it
    QUOTA_REFRESH_MS: '200',
    LOG_LEVEL: 'fatal',
  });
  const { QuotaService } = await import('../../services/billing/dist/quota/quota.service.js');
  const quota = billing.app.get(QuotaService);
  const workspaces = Array.from({ length: 1000 }, () => randomUUID());
  const users = Array.from({ length: 50 }, () => randomUUID());

  // Ledger ingest: publish N events up front, time until the ledger holds them all.
  const n = Number(values.events);
  const js = jetstream(await env.nats());
  const subject = env.subject('ally.evt.chat.completion.recorded');
  for (let i = 0; i < n; i += 1000) {
    await Promise.all(Array.from({ length: Math.min(1000, n - i) }, (_, k) => {
      const e = createEnvelope({ type: 'chat.completion.recorded', source: 'chat', data: { messageId: randomUUID(), workspace: workspaces[(i + k) % workspaces.length], userId: users[(i + k) % users.length], model: 'gpt-4o-mini', deployment: 'd', region: 'swedencentral', euResident: true, promptTokens: 100, completionTokens: 50, cost: 0.0001 } });
      return js.publish(subject, JSON.stringify(e), { msgID: e.id });
    }));
  }
  const t0 = performance.now();
  let count = 0;
  let first;
  while (count < n) {
    await new Promise((r) => setTimeout(r, 100));
    count = (await env.sql(`SELECT count(*)::int AS n FROM billing.ledger`))[0].n;
    first ??= { at: performance.now(), count };
  }
  const [span] = await env.sql(`SELECT extract(epoch FROM max(created_at) - min(created_at))::float AS s FROM billing.ledger`);
  const ingestRate = n / span.s;
  console.log(`ledger ingest: ${n} events in ${span.s.toFixed(2)} s (first to last insert) = ${Math.round(ingestRate)} events/s; wall ${((performance.now() - t0) / 1000).toFixed(1)} s after publishing`);

  // Quota check in-process (the in-memory view, after a refresh that includes the ledger).
  await quota.refresh();
  const checks = Number(values.checks);
  for (let i = 0; i < 10_000; i++) quota.check(workspaces[i % 1000], users[i % 50]);
  const lat = new Float64Array(checks);
  for (let i = 0; i < checks; i++) {
    const s = performance.now();
    quota.check(workspaces[i % 1000], users[i % 50]);
    lat[i] = performance.now() - s;
  }
  lat.sort();
  console.log(`quota check in billing (${checks}): p50 ${fmt(pct(lat, 50))}, p99 ${fmt(pct(lat, 99))}, max ${fmt(lat[lat.length - 1])}`);

  // Quota check through NATS RPC (ally.rpc.billing.quota.check), sequential round trips.
  const rpc = new RpcClient(await env.nats(), env.prefix);
  await rpc.connect();
  const r = Number(values.rpc);
  for (let i = 0; i < 200; i++) await rpc.call(BillingRpc.quotaCheck, { workspace: workspaces[i % 1000], userId: users[i % 50] });
  const rl = new Float64Array(r);
  for (let i = 0; i < r; i++) {
    const s = performance.now();
    await rpc.call(BillingRpc.quotaCheck, { workspace: workspaces[i % 1000], userId: users[i % 50] });
    rl[i] = performance.now() - s;
  }
  rl.sort();
  console.log(`quota check via NATS RPC (${r}, sequential): p50 ${fmt(pct(rl, 50))}, p99 ${fmt(pct(rl, 99))}`);
  await rpc.close?.();
} finally {
  await env.close();
  await stripe.close();
}
process.exit(0);
