import { createHmac, randomBytes } from 'node:crypto';
import type { BrevoEmulator, OpenAIEmulator, StripeEmulator } from '@ally/emulators';

type Env = Record<string, string>;

/** One KEK for the test run, as a deployment keeps one: a chat replica started again opens the keys the first wrapped. */
const CHAT_KEK = randomBytes(32).toString('base64');

/**
 * What each service needs to run against the vendor emulators in a test;
 * `extra` holds what the test itself is about (poll intervals, timeouts).
 */
export const chatEnv = (llm: OpenAIEmulator, extra: Env = {}): Env => ({
  MODEL_CATALOG_FILE: 'services/chat/config/models.dev.json',
  OPENAI_EMULATOR_URL: llm.url,
  CHAT_KEK,
  ...extra,
});

export const billingEnv = (stripe: StripeEmulator, extra: Env = {}): Env => ({
  PLANS_FILE: 'services/billing/config/plans.json',
  STRIPE_API_URL: stripe.url,
  STRIPE_WEBHOOK_SECRET: stripe.webhookSecret,
  ...extra,
});

/** notify's key for the hashes it keeps instead of addresses, in the tests. */
export const NOTIFY_TEST_ADDRESS_KEY = 'a-test-address-key-of-32-chars!!';

export const notifyEnv = (brevo: BrevoEmulator, extra: Env = {}): Env => ({ BREVO_BASE_URL: brevo.apiUrl, NOTIFY_ADDRESS_KEY: NOTIFY_TEST_ADDRESS_KEY, ...extra });

/** The hash notify keeps of an address (started with `notifyEnv`). */
export const addressHash = (email: string): string => createHmac('sha256', NOTIFY_TEST_ADDRESS_KEY).update(email.trim().toLowerCase()).digest('hex');
