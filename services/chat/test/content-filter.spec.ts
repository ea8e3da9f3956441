import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pino from 'pino';
import { startOpenAIEmulator, type OpenAIEmulator } from '@ally/emulators';
import type { Deployment } from '../src/catalog/model-catalog.js';
import { RouterService } from '../src/catalog/router.service.js';
import { CompletionService, type Plan } from '../src/completions/completion.service.js';
import { ProviderClients } from '../src/completions/provider-clients.js';
import type { ChatConfig } from '../src/config.js';
import { ContentFilterService, type PromptMessage } from '../src/content-filter/content-filter.service.js';
import type { RoutingPolicy } from '../src/policy/policy.service.js';

/** The content filter's choices against the emulator's record of what each endpoint received. */
describe('content filter', () => {
  let llm: OpenAIEmulator;
  const config = { PROVIDER_TIMEOUT_MS: 2_000, MODERATION_TIMEOUT_MS: 1_000, REDACT_PII_OUTSIDE_EU: true } as ChatConfig;
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

  /** What chat does before calling `target`: ask the moderator fit for it, if there is one. */
  const moderate = async (catalog: Deployment[], p: RoutingPolicy, target: Deployment) => {
    const f = filter(catalog);
    const moderator = f.moderatorFor(p, target);
    if (moderator) await f.moderate(messages, {}, p, 'u1', moderator);
  };
  const moderationCalls = () => llm.requests({ operation: 'moderations' }).map((r) => ({ endpoint: r.endpoint, input: JSON.stringify(r.input) }));

  it('moderates an EU route in the EU only, whatever the catalog order and the user allows, with the whole prompt', async () => {
    llm.clearRequests();
    await moderate([usModerator, euModerator, euTarget], policy(), euTarget);
    expect(moderationCalls()).toEqual([{ endpoint: 'openai-eu', input: JSON.stringify(['Du hilfst im Vertrieb.', PII]) }]);

    llm.clearRequests();
    await moderate([usModerator, euTarget], policy(), euTarget);
    expect(moderationCalls()).toEqual([]);
  });

  it("moderates only with a model the organisation allows: one that allows only its self-hosted model sends its prompts to no one else's", async () => {
    llm.clearRequests();
    await moderate([usModerator, euModerator, euTarget], policy({ workspace: 'org', allowedModels: ['mistral-small'] }), euTarget);
    expect(moderationCalls()).toEqual([]);
    await moderate([usModerator, euModerator, euTarget], policy({ workspace: 'org', allowedModels: ['mistral-small', 'gpt-4o-mini'] }), euTarget);
    expect(moderationCalls().map((c) => c.endpoint)).toEqual(['openai-eu']);
  });

  it('prefers an EU moderator for a non-EU route, and a non-EU one sees personal data redacted, as the route does', async () => {
    llm.clearRequests();
    await moderate([usModerator, euModerator, usTarget], policy(), usTarget);
    expect(moderationCalls().map((c) => c.endpoint)).toEqual(['openai-eu']);

    llm.clearRequests();
    await moderate([usModerator, usTarget], policy(), usTarget);
    const [call] = moderationCalls();
    expect(call.endpoint).toBe('openai-us');
    expect(call.input).not.toContain('anna@example.eu');
    expect(call.input).not.toContain('170 1234567');
    expect(call.input).toContain('[email]');

    llm.clearRequests();
    await moderate([usModerator, usTarget], policy({ restrictToEu: true, euOnly: true }), usTarget);
    expect(moderationCalls()).toEqual([]);
  });

  it('refuses an organisation’s blocked term wherever it stands: system, earlier turns, the answer history', () => {
    const org = policy({ workspace: 'org', blockedTerms: ['Projekt Kranich'] });
    const check = (history: PromptMessage[]) => () => filter([]).checkRules(history, org, 'u1');
    expect(check([{ role: 'system', content: 'Alles über PROJEKT KRANICH' }, { role: 'user', content: 'Hallo' }])).toThrow('organisation does not allow');
    expect(check([{ role: 'user', content: 'projekt kranich?' }, { role: 'assistant', content: 'Ja.' }, { role: 'user', content: 'Weiter' }])).toThrow('organisation does not allow');
    expect(check([{ role: 'assistant', content: 'Projekt Kranich' }, { role: 'user', content: 'Weiter' }])).toThrow('organisation does not allow');
    expect(check([{ role: 'user', content: 'Projekt Storch' }])).not.toThrow();
    // Accents, a dotted capital I, "SS" for "ß", and invisible characters that are no format controls do not hide a term.
    const strict = policy({ workspace: 'org', blockedTerms: ['geheim', 'istanbul', 'Straße'] });
    for (const content of ['gehéim', 'ge\u0301heim', 'ge\u034Fheim', 'ge\u3164heim', 'ge\u115Fheim', 'İSTANBUL', 'STRASSE', 'strasse', 'STRAẞE']) {
      expect(() => filter([]).checkRules([{ role: 'user', content }], strict, 'u1')).toThrow('organisation does not allow');
    }
    expect(() => filter([]).checkRules([{ role: 'user', content: 'Gehege und Heim' }], strict, 'u1')).not.toThrow();
    // Look-alike letters of other scripts (Cyrillic е and і, Greek Ε, Cherokee Ꮋ, mathematical and full-width forms) do not hide one either.
    for (const content of ['g\u0435heim', 'geh\u0435\u0456m', 'G\u0395HEIM', 'GE\u13BBEIM', '\u{1D420}\u{1D41E}\u{1D421}\u{1D41E}\u{1D422}\u{1D426}', 'ｇｅｈｅｉｍ', '\u0406stanbul', 'g\u0395heim']) {
      expect(() => filter([]).checkRules([{ role: 'user', content }], strict, 'u1')).toThrow('organisation does not allow');
    }
    // Plain ASCII stays as written: "rn" is no "m", "0" no "O".
    const codename = policy({ workspace: 'org', blockedTerms: ['modem', 'OTTO'] });
    for (const content of ['rnodern', 'M0DEM', '0TT0']) expect(() => filter([]).checkRules([{ role: 'user', content }], codename, 'u1')).not.toThrow();
    // A term written in another script meets itself in either case; a term of invisible characters alone blocks nothing.
    const cyrillic = policy({ workspace: 'org', blockedTerms: ['секрет', '\u200b\u00ad', '\u200b \u200b'] });
    for (const content of ['Это СЕКРЕТ', 'секрет']) expect(() => filter([]).checkRules([{ role: 'user', content }], cyrillic, 'u1')).toThrow('organisation does not allow');
    expect(() => filter([]).checkRules([{ role: 'user', content: 'Hallo Welt' }], cyrillic, 'u1')).not.toThrow();
    const edged = policy({ workspace: 'org', blockedTerms: ['\u200b geheim'] });
    expect(() => filter([]).checkRules([{ role: 'user', content: 'geheim ist das' }], edged, 'u1')).toThrow('organisation does not allow');
  });

  it('redacts what leaves the EU in the stop sequences as in the messages, and sends an EU route both as written', () => {
    const messages: PromptMessage[] = [{ role: 'user', content: 'Schreib an anna@example.eu' }];
    const params = { stop: ['anna@example.eu', 'Ende'], temperature: 0.2 };
    expect(filter([usTarget]).prepareFor(usTarget, messages, true, params)).toEqual({
      messages: [{ role: 'user', content: 'Schreib an [email]' }],
      params: { stop: ['[email]', 'Ende'], temperature: 0.2 },
    });
    expect(filter([usTarget]).prepareFor(usTarget, messages, true, { stop: 'anna@example.eu' }).params).toEqual({ stop: '[email]' });
    expect(filter([euTarget]).prepareFor(euTarget, messages, true, params)).toEqual({ messages, params });
    // A deployment configured as EU that lately reported a region outside it is outside.
    const router = new RouterService([euTarget]);
    router.quarantineOutsideEu(euTarget.id);
    const quarantined = new ContentFilterService(router, new ProviderClients(config), config, pino({ level: 'silent' }));
    expect(quarantined.prepareFor(euTarget, messages, true).messages).toEqual([{ role: 'user', content: 'Schreib an [email]' }]);
  });

  it('moderates again before a fallback whose residency allows a moderator the first route did not have', async () => {
    // m@eu has no EU moderator to ask; when it fails, m@us may be moderated by the US endpoint, and must be.
    const mEu: Deployment = { ...euTarget, id: 'm@eu', model: 'm' };
    const mUs: Deployment = { ...usTarget, id: 'm@us', model: 'm', baseUrl: llm.openaiBaseUrl('m-us') };
    const catalog = [mEu, mUs, usModerator];
    const router = new RouterService(catalog);
    const clients = new ProviderClients(config);
    const logger = pino({ level: 'silent' });
    const filters = new ContentFilterService(router, clients, config, logger);
    // complete() needs only routing, the filter, the providers and, before a fallback, the policy as it stands: the rest of the service stays out.
    const unchanged = { resolve: async () => plan.policy };
    const completions = new CompletionService(undefined as never, unchanged as never, router, undefined as never, filters, undefined as never, clients, undefined as never, config, logger);
    const plan: Plan = { actor: { userId: 'u1', platformRoles: [] }, policy: policy(), model: 'm', candidates: [mEu, mUs], messages: [{ role: 'user', content: 'Tell me about forbidden-topic' }], params: {}, quota: { key: 'private:u1', tokens: 0, settled: false } };
    llm.clearRequests();
    llm.failNext({ status: 500, endpoint: 'mistral' });
    await expect(completions.complete(plan)).rejects.toMatchObject({ status: 422 });
    expect(llm.requests().map((r) => `${r.operation}@${r.endpoint}`)).toEqual(['chat.completions@mistral', 'moderations@openai-us']);
  });
});
