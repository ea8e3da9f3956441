import { randomBytes } from 'node:crypto';
import type { BrevoEmulator, OpenAIEmulator, StripeEmulator } from '@ally/emulators';

type Env = Record<string, string>;

/**
 * What each service needs to run against the vendor emulators in a test;
 * `extra` holds what the test itself is about (poll intervals, timeouts).
 */
export const chatEnv = (llm: OpenAIEmulator, extra: Env = {}): Env => ({
  MODEL_CATALOG_FILE: 'services/chat/config/models.dev.json',
  OPENAI_EMULATOR_URL: llm.url,
  CHAT_KEK: randomBytes(32).toString('base64'),
  ...extra,
});

export const billingEnv = (stripe: StripeEmulator, extra: Env = {}): Env => ({
  PLANS_FILE: 'services/billing/config/plans.json',
  STRIPE_API_URL: stripe.url,
  STRIPE_WEBHOOK_SECRET: stripe.webhookSecret,
  ...extra,
});

export const notifyEnv = (brevo: BrevoEmulator, extra: Env = {}): Env => ({ BREVO_BASE_URL: brevo.apiUrl, ...extra });
