import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pino from 'pino';
import { startOpenAIEmulator, type OpenAIEmulator } from '@ally/emulators';
import type { Deployment } from '../src/catalog/model-catalog.js';
import { RouterService } from '../src/catalog/router.service.js';
import { ProviderClients } from '../src/completions/provider-clients.js';
import type { ChatConfig } from '../src/config.js';
import { ContentFilterService, type PromptMessage } from '../src/content-filter/content-filter.service.js';
import type { RoutingPolicy } from '../src/policy/policy.service.js';

/** The content filter's choices against the emulator's record of what each endpoint received. */
describe('content filter', () => {
  let llm: OpenAIEmulator;
  const config = { PROVIDER_TIMEOUT_MS: 2_000, REDACT_PII_OUTSIDE_EU: true } as ChatConfig;
  const policy = (p: Partial<RoutingPolicy> = {}): RoutingPolicy => ({ workspace: 'private', restrictToEu: false, orgEuOnly: false, allowedModels: null, blockedTerms: [], euOnly: false, ...p });
  let usModerator: Deployment;
  let euModerator: Deployment;
  let euTarget: Deployment;
  let usTarget: Deployment;
  const filter = (catalog: Deployment[]) => new ContentFilterService(new RouterService(catalog), new ProviderClients(config), config, pino({ level: 'silent' }));
  const PII = 'Schreib an anna@example.eu oder +49 170 1234567';
  const messages: PromptMessage[] = [
    { role: 'system', content: 'Du hilfst im Vertrieb.' },
    { role: 'user', content: PII },
  ];

  beforeAll(async () => {
    llm = await startOpenAIEmulator();
    const common = { apiKey: 'emulator', apiKeyEnv: 'X', contextWindow: 128_000, pricePer1kTokens: { prompt: 0, completion: 0 }, promptFilter: false };
    // Listed first and preferred by priority: the non-EU moderator must still never see an EU route's prompt.
    usModerator = { ...common, id: 'us-mod', model: 'gpt-4o', provider: 'openai', deploymentType: 'standard', region: 'us', euResident: false, baseUrl: llm.openaiBaseUrl('openai-us'), priority: 1, moderation: true };
    euModerator = { ...common, id: 'eu-mod', model: 'gpt-4o-mini', provider: 'openai', deploymentType: 'eu-residency', region: 'eu', euResident: true, baseUrl: llm.openaiBaseUrl('openai-eu'), priority: 9, moderation: true };
    euTarget = { ...common, id: 'mistral', model: 'mistral-small', provider: 'openai-compatible', deploymentType: 'self-hosted', region: 'fsn1', euResident: true, baseUrl: llm.openaiBaseUrl('mistral'), priority: 1, moderation: false };
    usTarget = { ...usModerator, id: 'us-chat', moderation: false };
  });

  afterAll(async () => {
    await llm?.close();
  });

  const moderationCalls = () => llm.requests({ operation: 'moderations' }).map((r) => ({ endpoint: r.endpoint, input: JSON.stringify(r.input) }));

  it('moderates an EU route in the EU only, whatever the catalog order and the user allows, with the whole prompt', async () => {
    llm.clearRequests();
    await filter([usModerator, euModerator, euTarget]).moderate(messages, policy(), 'u1', euTarget);
    expect(moderationCalls()).toEqual([{ endpoint: 'openai-eu', input: JSON.stringify(['Du hilfst im Vertrieb.', PII]) }]);

    llm.clearRequests();
    await filter([usModerator, euTarget]).moderate(messages, policy(), 'u1', euTarget);
    expect(moderationCalls()).toEqual([]);
  });

  it('prefers an EU moderator for a non-EU route, and a non-EU one sees personal data redacted, as the route does', async () => {
    llm.clearRequests();
    await filter([usModerator, euModerator, usTarget]).moderate(messages, policy(), 'u1', usTarget);
    expect(moderationCalls().map((c) => c.endpoint)).toEqual(['openai-eu']);

    llm.clearRequests();
    await filter([usModerator, usTarget]).moderate(messages, policy(), 'u1', usTarget);
    const [call] = moderationCalls();
    expect(call.endpoint).toBe('openai-us');
    expect(call.input).not.toContain('anna@example.eu');
    expect(call.input).not.toContain('170 1234567');
    expect(call.input).toContain('[email]');

    llm.clearRequests();
    await filter([usModerator, usTarget]).moderate(messages, policy({ restrictToEu: true, euOnly: true }), 'u1', usTarget);
    expect(moderationCalls()).toEqual([]);
  });

  it('refuses an organisation’s blocked term wherever it stands: system, earlier turns, the answer history', () => {
    const org = policy({ workspace: 'org', blockedTerms: ['Projekt Kranich'] });
    const check = (history: PromptMessage[]) => () => filter([]).checkRules(history, org, 'u1');
    expect(check([{ role: 'system', content: 'Alles über PROJEKT KRANICH' }, { role: 'user', content: 'Hallo' }])).toThrow('organisation does not allow');
    expect(check([{ role: 'user', content: 'projekt kranich?' }, { role: 'assistant', content: 'Ja.' }, { role: 'user', content: 'Weiter' }])).toThrow('organisation does not allow');
    expect(check([{ role: 'assistant', content: 'Projekt Kranich' }, { role: 'user', content: 'Weiter' }])).toThrow('organisation does not allow');
    expect(check([{ role: 'user', content: 'Projekt Storch' }])).not.toThrow();
  });
});
