import { randomBytes } from 'node:crypto';
import { billingService } from '@ally/billing';
import { chatService } from '@ally/chat';
import { startBrevoEmulator, startOpenAIEmulator, startStripeEmulator, type BrevoEmulator, type OpenAIEmulator, type StripeEmulator } from '@ally/emulators';
import { gatewayService } from '@ally/gateway';
import { identityService } from '@ally/identity';
import { RpcClient } from '@ally/messaging';
import { notifyService } from '@ally/notify';
import { privacyService } from '@ally/privacy';
import { createTestEnv, httpClient, type RunningService, type TestEnv } from '@ally/testing';
import { billingEnv, chatEnv, notifyEnv } from './service-env.js';

type Env = Record<string, string>;

/** privacy as the flows test it: quick polls and retries, an export key, retention runs in this process. */
export const PRIVACY_TEST_ENV: Env = {
  PRIVACY_POLL_MS: '50',
  PRIVACY_RETRY_BASE_MS: '100',
  PRIVACY_RETRY_MAX_MS: '500',
  PRIVACY_STEP_TIMEOUT_MS: '3000',
  RETENTION_RUNNER: 'in-process',
};

export interface PlatformWorld {
  env: TestEnv;
  llm: OpenAIEmulator;
  stripe: StripeEmulator;
  brevo: BrevoEmulator;
  services: { identity: RunningService; chat: RunningService; billing: RunningService; notify: RunningService; privacy?: RunningService; gateway?: RunningService };
  /** Straight to the services' RPCs, as another service would call them. */
  rpc: RpcClient;
  /** Through the gateway, when it runs. */
  http: ReturnType<typeof httpClient>;
  close(): Promise<void>;
}

/**
 * Every service holding personal data (identity, chat, billing, notify) with
 * the vendor emulators; privacy and the gateway when asked. Each option is
 * the service's environment on top of the defaults (`false` leaves it out).
 */
export async function startPlatformWorld(opts: { chat?: Env; billing?: Env; notify?: Env; privacy?: Env | false; gateway?: boolean } = {}): Promise<PlatformWorld> {
  const env = await createTestEnv();
  const [llm, stripe, brevo] = await Promise.all([startOpenAIEmulator(), startStripeEmulator(), startBrevoEmulator()]);
  const rpc = new RpcClient(await env.nats(), env.prefix);
  const close = async () => {
    await rpc.close().catch(() => undefined);
    await env.close();
    await Promise.all([llm.close(), stripe.close(), brevo.close()]);
  };
  try {
    const services: PlatformWorld['services'] = {
      identity: await env.start(identityService),
      chat: await env.start(chatService, chatEnv(llm, { QUOTA_PROVIDER: 'none', ...opts.chat })),
      billing: await env.start(billingService, billingEnv(stripe, opts.billing)),
      notify: await env.start(notifyService, notifyEnv(brevo, { NOTIFY_POLL_MS: '50', ...opts.notify })),
    };
    if (opts.privacy !== false) services.privacy = await env.start(privacyService, { ...PRIVACY_TEST_ENV, PRIVACY_KEK: randomBytes(32).toString('base64'), ...opts.privacy });
    if (opts.gateway) {
      // Its flows register and sign in many people from one address: the credential limit is not what they test.
      services.gateway = await env.start(gatewayService, { AUTH_RATE_LIMIT_PER_MINUTE: '1000' });
      // Stripe's events reach billing the way they do in production: signed, at the gateway's webhook route.
      stripe.setWebhookEndpoint(`${services.gateway.url}/v1/webhooks/stripe`, { secret: stripe.webhookSecret });
    }
    await rpc.connect();
    return { env, llm, stripe, brevo, services, rpc, http: httpClient(services.gateway?.url ?? 'http://127.0.0.1:9'), close };
  } catch (err) {
    // A service that did not start leaves neither its database nor the emulators behind.
    await close().catch(() => undefined);
    throw err;
  }
}

/** Every row of every table of every service, as text (bytea as hex): where a trace of a person would show. */
export async function everyRow(env: TestEnv): Promise<Record<string, string>> {
  const tables = await env.sql<{ s: string; t: string }>(
    `SELECT table_schema AS s, table_name AS t FROM information_schema.tables WHERE table_schema IN ('identity', 'chat', 'billing', 'notify', 'privacy') AND table_type = 'BASE TABLE'`,
  );
  const dump: Record<string, string> = {};
  for (const { s, t } of tables) dump[`${s}.${t}`] = JSON.stringify(await env.sql(`SELECT * FROM "${s}"."${t}"`));
  return dump;
}
