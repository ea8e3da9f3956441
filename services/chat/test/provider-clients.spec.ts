import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { startOpenAIEmulator, type OpenAIEmulator } from '@ally/emulators';
import type { Deployment } from '../src/catalog/model-catalog.js';
import type { ChatConfig } from '../src/config.js';
import { filteredCategories, isAbort, isFallbackWorthy, isPromptFiltered, ProviderClients } from '../src/completions/provider-clients.js';
import { completionChunks } from '../src/completions/provider-stream.js';

/** The official SDK through chat's provider fetch, against the emulator: the errors chat decides on. */
describe('provider clients', () => {
  let llm: OpenAIEmulator;
  let clients: ProviderClients;
  let azure: Deployment;
  let openaiEu: Deployment;
  const messages = [{ role: 'user' as const, content: '#tokens=5 Guten Morgen' }];

  beforeAll(async () => {
    llm = await startOpenAIEmulator({ azureRegions: { 'gpt-4o-mini-swc': 'swedencentral' } });
    clients = new ProviderClients({ PROVIDER_TIMEOUT_MS: 500 } as ChatConfig);
    const common = { model: 'gpt-4o-mini', euResident: true, apiKey: 'emulator', apiKeyEnv: 'X', contextWindow: 128_000, priority: 1, pricePer1kTokens: { prompt: 0, completion: 0 }, moderation: false };
    azure = { ...common, id: 'swc', provider: 'azure', deployment: 'gpt-4o-mini-swc', deploymentType: 'regional', region: 'swedencentral', baseUrl: llm.azureEndpoint(), apiVersion: '2024-10-21', promptFilter: true };
    openaiEu = { ...common, id: 'eu', provider: 'openai', deploymentType: 'eu-residency', region: 'eu', baseUrl: llm.openaiBaseUrl('openai-eu'), promptFilter: false };
  });

  afterAll(async () => {
    await llm?.close();
  });

  it('streams and answers through the SDK, with the headers the receipt reads', async () => {
    const response = await clients.for(azure).chat.completions.create({ model: 'gpt-4o-mini-swc', messages, stream: true, stream_options: { include_usage: true } }).asResponse();
    expect(response.headers.get('x-ms-region')).toBe('Sweden Central');
    let text = '';
    let usage;
    for await (const chunk of completionChunks(response)) {
      text += chunk.choices[0]?.delta?.content ?? '';
      usage = chunk.usage ?? usage;
    }
    expect(text).toBe('lorem lorem lorem lorem lorem');
    expect(usage).toMatchObject({ completion_tokens: 5 });

    const answer = await clients.for(openaiEu).chat.completions.create({ model: 'gpt-4o-mini', messages });
    expect(answer.choices[0].message.content).toBe('lorem lorem lorem lorem lorem');
  });

  it("recognises Azure's prompt filter refusal, with the flagged categories, as a refusal and not a failure", async () => {
    const err = await clients.for(azure).chat.completions.create({ model: 'gpt-4o-mini-swc', messages: [{ role: 'user', content: 'about forbidden-topic' }] }).catch((e: unknown) => e);
    expect(isPromptFiltered(err)).toBe(true);
    expect(filteredCategories(err as never)).toEqual(['hate']);
    expect(isFallbackWorthy(err)).toBe(false);
  });

  it('treats 500, 429 and a provider that does not answer within PROVIDER_TIMEOUT_MS as worth a fallback, a 400 not', async () => {
    for (const status of [500, 429, 400]) {
      llm.failNext({ status, endpoint: 'openai-eu', times: 1 });
      const err = await clients.for(openaiEu).chat.completions.create({ model: 'gpt-4o-mini', messages }).catch((e: unknown) => e);
      expect([status, isFallbackWorthy(err)]).toEqual([status, status !== 400]);
    }
    llm.hangNext({ endpoint: 'openai-eu', times: 1 });
    const started = Date.now();
    const timedOut = await clients.for(openaiEu).chat.completions.create({ model: 'gpt-4o-mini', messages }).catch((e: unknown) => e);
    expect(Date.now() - started).toBeGreaterThanOrEqual(450);
    expect(isFallbackWorthy(timedOut)).toBe(true);
    expect(isAbort(timedOut)).toBe(false);
  });

  it('aborts the request mid-stream when the signal fires: the SDK ends the stream quietly, and the provider sees it go', async () => {
    llm.clearRequests();
    llm.setLatency({ latencyPerTokenMs: 5, deployment: 'gpt-4o-mini-swc' });
    const controller = new AbortController();
    const stream = await clients.for(azure).chat.completions.create({ model: 'gpt-4o-mini-swc', messages: [{ role: 'user', content: '#tokens=2000 lang' }], stream: true }, { signal: controller.signal });
    let chunks = 0;
    for await (const _ of stream) if (++chunks === 3) controller.abort();
    // No error to see: CompletionService.stream checks the signal itself.
    expect(chunks).toBeLessThan(2000);
    const seen = await llm.waitForRequest({ deployment: 'gpt-4o-mini-swc', aborted: true }, 5_000);
    expect(seen.completed).toBe(false);
    llm.reset();
  });
});
