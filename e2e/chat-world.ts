import { chatService } from '@ally/chat';
import { startOpenAIEmulator, type OpenAIEmulator, type OpenAIEmulatorOptions } from '@ally/emulators';
import { gatewayService } from '@ally/gateway';
import { identityService } from '@ally/identity';
import { createTestEnv, httpClient, type RunningService, type TestEnv } from '@ally/testing';
import { chatEnv } from './service-env.js';

export interface ChatWorld {
  env: TestEnv;
  llm: OpenAIEmulator;
  identity: RunningService;
  chat: RunningService;
  gateway: RunningService;
  /** The gateway's base URL. */
  base: string;
  http: ReturnType<typeof httpClient>;
  close(): Promise<void>;
}

/**
 * What most chat tests run against: identity, chat (quota allow-all unless
 * `chat` says otherwise) and the gateway, with the OpenAI/Azure emulator;
 * `chat` and `gateway` add to or override their environments.
 */
export async function startChatWorld(opts: { llm?: OpenAIEmulatorOptions; chat?: Record<string, string>; gateway?: Record<string, string> } = {}): Promise<ChatWorld> {
  const env = await createTestEnv();
  const llm = await startOpenAIEmulator(opts.llm);
  const identity = await env.start(identityService);
  const chat = await env.start(chatService, chatEnv(llm, { QUOTA_PROVIDER: 'none', ...opts.chat }));
  const gateway = await env.start(gatewayService, opts.gateway);
  const base = gateway.url;
  return {
    env,
    llm,
    identity,
    chat,
    gateway,
    base,
    http: httpClient(base),
    close: async () => {
      await env.close();
      await llm.close();
    },
  };
}
