import { startStripeEmulator, type StripeMeterSeed, type StripePriceSeed } from './stripe-emulator.js';

// `node tools/emulators/dist/stripe/main.js`: the Stripe emulator on STRIPE_EMULATOR_PORT (default 8127).
// Optional: STRIPE_EMULATOR_HOST (default 127.0.0.1; 0.0.0.0 in a container), STRIPE_EMULATOR_PUBLIC_URL
// (base of checkout / portal / invoice links), STRIPE_EMULATOR_API_KEY (only this key; default any sk_test_…),
// STRIPE_EMULATOR_WEBHOOK_URL, STRIPE_EMULATOR_WEBHOOK_SECRET (default random whsec_…, printed at start),
// STRIPE_EMULATOR_TAX_PERCENT,
// STRIPE_EMULATOR_METERS   "mtr_id=event_name[:sum|count|last],…"
// STRIPE_EMULATOR_PRICES   "price_id=unit_amount[:currency[:interval[:meter_id]]],…" (a meter id makes the price metered;
//                          interval "once" makes it one-time). When set, other price ids are refused as Stripe does.
const env = process.env;
const entries = (v: string | undefined) =>
  (v ?? '')
    .split(',')
    .map((pair) => pair.split('=').map((s) => s.trim()))
    .filter(([k, rest]) => k && rest);

const meters: StripeMeterSeed[] = entries(env.STRIPE_EMULATOR_METERS).map(([id, rest]) => {
  const [event_name, formula] = rest.split(':');
  return { id, event_name, formula: (formula || 'sum') as StripeMeterSeed['formula'] };
});
const prices: StripePriceSeed[] = entries(env.STRIPE_EMULATOR_PRICES).map(([id, rest]) => {
  const [amount, currency, interval, meter] = rest.split(':');
  return {
    id,
    unit_amount: Number(amount),
    currency: currency || undefined,
    interval: interval === 'once' ? null : ((interval || 'month') as StripePriceSeed['interval']),
    ...(meter ? { usage_type: 'metered' as const, meter } : {}),
  };
});

const emulator = await startStripeEmulator({
  port: Number(env.STRIPE_EMULATOR_PORT ?? 8127),
  host: env.STRIPE_EMULATOR_HOST || '127.0.0.1',
  publicUrl: env.STRIPE_EMULATOR_PUBLIC_URL || undefined,
  apiKey: env.STRIPE_EMULATOR_API_KEY || undefined,
  webhookUrl: env.STRIPE_EMULATOR_WEBHOOK_URL || undefined,
  webhookSecret: env.STRIPE_EMULATOR_WEBHOOK_SECRET || undefined,
  taxPercent: env.STRIPE_EMULATOR_TAX_PERCENT ? Number(env.STRIPE_EMULATOR_TAX_PERCENT) : undefined,
  meters,
  prices: prices.length ? prices : undefined,
});
console.log(
  JSON.stringify({
    level: 30,
    service: 'stripe-emulator',
    msg: `Stripe emulator listening on ${emulator.url} (SDK: { host: '${emulator.sdkOptions.host}', port: ${emulator.port}, protocol: 'http' }); webhooks to ${env.STRIPE_EMULATOR_WEBHOOK_URL || '(none yet: POST /__emulator/webhook-endpoint)'} signed with ${emulator.webhookSecret} (development: no payment leaves this machine)`,
  }),
);
const stop = () => emulator.close().then(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
