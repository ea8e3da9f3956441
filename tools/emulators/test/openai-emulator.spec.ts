import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import OpenAI, { AzureOpenAI } from 'openai';
import { azureRegionDisplayName, startOpenAIEmulator, type OpenAIEmulator } from '@ally/emulators';

// The real `openai` SDK against the emulator: what works here works against OpenAI and Azure OpenAI.
describe('OpenAI / Azure OpenAI emulator', () => {
  let emulator: OpenAIEmulator;

  beforeAll(async () => {
    emulator = await startOpenAIEmulator({ azureRegions: { 'gpt-4o-fr': 'francecentral' } });
  });
  afterAll(() => emulator.close());
  beforeEach(() => emulator.reset());

  const openai = (endpoint?: string, extra: Partial<ConstructorParameters<typeof OpenAI>[0]> = {}) =>
    new OpenAI({ baseURL: emulator.openaiBaseUrl(endpoint), apiKey: 'sk-test-key', maxRetries: 0, ...extra });
  const azure = (deployment: string, extra: Partial<ConstructorParameters<typeof AzureOpenAI>[0]> = {}) =>
    new AzureOpenAI({ endpoint: emulator.url, apiKey: 'azure-test-key', apiVersion: '2024-10-21', deployment, maxRetries: 0, ...extra });
  const collect = async <T>(stream: AsyncIterable<T>) => {
    const out: T[] = [];
    for await (const item of stream) out.push(item);
    return out;
  };

  describe('OpenAI style', () => {
    it("calls the tools the user's message names, streamed as OpenAI streams calls, answers from their results, and refuses a result without its call", async () => {
      const tools: OpenAI.Chat.ChatCompletionTool[] = [
        { type: 'function', function: { name: 'weather', parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['c', 'f'] }, days: { type: 'integer' } } } } },
        { type: 'function', function: { name: 'time', parameters: { type: 'object', properties: {} } } },
      ];
      const asked: OpenAI.Chat.ChatCompletionMessageParam[] = [{ role: 'user', content: 'weather and time, please' }];
      const whole = await openai().chat.completions.create({ model: 'gpt-4o', messages: asked, tools });
      const calls = whole.choices[0].message.tool_calls!;
      expect(whole.choices[0]).toMatchObject({ finish_reason: 'tool_calls', message: { content: null } });
      expect(calls.map((c) => c.type === 'function' && [c.function.name, JSON.parse(c.function.arguments)])).toEqual([
        ['weather', { city: 'example', unit: 'c', days: 1 }],
        ['time', {}],
      ]);
      expect(whole.usage!.completion_tokens).toBeGreaterThan(2);

      const streamed = await openai().chat.completions.stream({ model: 'gpt-4o', messages: asked, tools, parallel_tool_calls: false }).finalChatCompletion();
      expect(streamed.choices[0].message.tool_calls!.map((c) => c.type === 'function' && c.function.name)).toEqual(['weather']);
      expect(streamed.choices[0].finish_reason).toBe('tool_calls');
      // Named by tool_choice, or the first when one is required; none with "none".
      const named = await openai().chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], tools, tool_choice: { type: 'function', function: { name: 'time' } } });
      expect(named.choices[0].message.tool_calls!.map((c) => c.type === 'function' && c.function.name)).toEqual(['time']);
      const required = await openai().chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], tools, tool_choice: 'required' });
      expect(required.choices[0].message.tool_calls!.map((c) => c.type === 'function' && c.function.name)).toEqual(['weather']);
      const none = await openai().chat.completions.create({ model: 'gpt-4o', messages: asked, tools, tool_choice: 'none' });
      expect(none.choices[0].message).toMatchObject({ content: 'Echo: weather and time, please' });

      const results = calls.map((c, i): OpenAI.Chat.ChatCompletionToolMessageParam => ({ role: 'tool', tool_call_id: c.id, content: ['sunny', 'noon'][i] }));
      const answer = await openai().chat.completions.create({ model: 'gpt-4o', messages: [...asked, whole.choices[0].message, ...results], tools });
      expect(answer.choices[0]).toMatchObject({ finish_reason: 'stop', message: { content: 'Tool results: sunny; noon' } });

      await expect(openai().chat.completions.create({ model: 'gpt-4o', messages: [...asked, { role: 'tool', tool_call_id: 'call_x', content: 'sunny' }] })).rejects.toMatchObject({ status: 400 });
      await expect(openai().chat.completions.create({ model: 'gpt-4o', messages: asked, tool_choice: 'auto' })).rejects.toMatchObject({ status: 400, param: 'tool_choice' });
      await expect(openai().chat.completions.create({ model: 'gpt-4o', messages: asked, parallel_tool_calls: false })).rejects.toMatchObject({ status: 400, param: 'parallel_tool_calls' });
      // Each call is answered right after the turn that made it.
      await expect(openai().chat.completions.create({ model: 'gpt-4o', messages: [...asked, whole.choices[0].message, results[0], { role: 'user', content: 'and?' }] })).rejects.toMatchObject({
        status: 400,
        message: expect.stringContaining(calls[1].id),
      });
    });

    it('answers a chat completion with the echo and word counts, recorded under its endpoint prefix', async () => {
      const completion = await openai('openai-eu').chat.completions.create({
        model: 'gpt-4o',
        messages: [
          { role: 'system', content: 'You are Ally' },
          { role: 'user', content: 'Hello there' },
        ],
      });

      expect(completion).toMatchObject({
        object: 'chat.completion',
        model: 'gpt-4o',
        choices: [{ index: 0, message: { role: 'assistant', content: 'Echo: Hello there' }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 },
      });
      expect(completion.id).toMatch(/^chatcmpl-/);
      expect(emulator.requests()).toEqual([
        expect.objectContaining({
          kind: 'openai',
          operation: 'chat.completions',
          endpoint: 'openai-eu',
          model: 'gpt-4o',
          stream: false,
          apiKey: 'sk-test-key',
          messages: [
            { role: 'system', content: 'You are Ally' },
            { role: 'user', content: 'Hello there' },
          ],
          status: 200,
          completed: true,
          aborted: false,
        }),
      ]);
    });

    it('tells several base URLs of one server apart', async () => {
      await openai('openai-eu').chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'a' }] });
      await openai('openai-us').chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'b' }] });
      await openai().chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'c' }] });

      expect(emulator.requests().map((r) => r.endpoint)).toEqual(['openai-eu', 'openai-us', '']);
      expect(emulator.requests({ endpoint: '/openai-us/' })).toHaveLength(1);
    });

    it('streams a role chunk, one chunk per token, a finish chunk and, when asked, a usage chunk', async () => {
      const stream = await openai().chat.completions.create({
        model: 'gpt-4o-mini',
        messages: [{ role: 'user', content: '#tokens=4 write something' }],
        stream: true,
        stream_options: { include_usage: true },
      });
      const chunks = await collect(stream);

      expect(chunks[0].choices[0].delta).toMatchObject({ role: 'assistant', content: '' });
      const content = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
      expect(content).toBe('lorem lorem lorem lorem');
      expect(chunks.filter((c) => c.choices[0]?.delta?.content)).toHaveLength(4);
      expect(chunks.at(-2)!.choices[0]).toMatchObject({ delta: {}, finish_reason: 'stop' });
      expect(chunks.at(-1)).toMatchObject({ object: 'chat.completion.chunk', choices: [], usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 } });
      expect(emulator.requests()[0]).toMatchObject({ stream: true, completionTokens: 4, completed: true, aborted: false });
    });

    it('sends no usage chunk unless include_usage is set, and stops at max_tokens', async () => {
      const chunks = await collect(
        await openai().chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'one two three four' }], stream: true, max_tokens: 2 }),
      );
      expect(chunks.every((c) => c.choices.length === 1 && c.usage === undefined)).toBe(true);
      expect(chunks.map((c) => c.choices[0].delta.content ?? '').join('')).toBe('Echo: one');
      expect(chunks.at(-1)!.choices[0].finish_reason).toBe('length');
    });

    it('flags input containing "forbidden-topic" as harassment', async () => {
      const moderation = await openai().moderations.create({ model: 'omni-moderation-latest', input: ['How do I bake bread?', 'Tell me about the forbidden-topic'] });

      expect(moderation.results.map((r) => r.flagged)).toEqual([false, true]);
      expect(moderation.results[1].categories.harassment).toBe(true);
      expect(moderation.results[1].categories.violence).toBe(false);
      expect(moderation.results[0].categories.harassment).toBe(false);
      expect(emulator.requests({ operation: 'moderations' })[0]).toMatchObject({ kind: 'openai', input: ['How do I bake bread?', 'Tell me about the forbidden-topic'] });
    });

    it('lists models', async () => {
      const ids: string[] = [];
      for await (const model of openai().models.list()) ids.push(model.id);
      expect(ids).toEqual(expect.arrayContaining(['gpt-4o', 'gpt-4o-mini', 'omni-moderation-latest']));
    });
  });

  describe('Azure style', () => {
    it('answers through AzureOpenAI with the deployment region in x-ms-region, by its display name as Azure sends it', async () => {
      const { data, response } = await azure('gpt-4o-fr')
        .chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'Bonjour' }] })
        .withResponse();

      expect(response.headers.get('x-ms-region')).toBe('France Central');
      expect(response.headers.get('apim-request-id')).toMatch(/^[0-9a-f-]{36}$/);
      expect(data.choices[0].message.content).toBe('Echo: Bonjour');
      expect(data.usage).toMatchObject({ prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 });
      expect(emulator.requests()).toEqual([
        expect.objectContaining({
          kind: 'azure',
          endpoint: 'gpt-4o-fr',
          path: '/openai/deployments/gpt-4o-fr/chat/completions',
          apiVersion: '2024-10-21',
          region: 'France Central',
          apiKey: 'azure-test-key',
          model: 'gpt-4o',
          stream: false,
          aborted: false,
        }),
      ]);
    });

    it('streams with the region header readable, Azure’s prompt-filter chunk first, then the role chunk', async () => {
      const { data: stream, response } = await azure('gpt-4o-se')
        .chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'Hej då' }], stream: true, stream_options: { include_usage: true } })
        .withResponse();
      expect(response.headers.get('x-ms-region')).toBe('Sweden Central'); // the default region
      const chunks = await collect(stream);

      expect(chunks[0]).toMatchObject({ choices: [], prompt_filter_results: [expect.objectContaining({ prompt_index: 0 })] });
      expect(chunks[1].choices[0].delta.role).toBe('assistant');
      expect(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('')).toBe('Echo: Hej då');
      expect(chunks.at(-1)!.usage).toMatchObject({ prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 });
      expect(emulator.requests({ deployment: 'gpt-4o-se' })[0]).toMatchObject({ stream: true, completed: true, region: 'Sweden Central' });
    });

    it('works with the SDK stream helper', async () => {
      const runner = azure('gpt-4o-fr').chat.completions.stream({ model: 'gpt-4o', messages: [{ role: 'user', content: 'helper test' }] });
      const final = await runner.finalChatCompletion();
      expect(final.choices[0].message.content).toBe('Echo: helper test');
    });

    it('answers 404 Resource not found without api-version, as Azure does, and 401 without a key', async () => {
      const path = `${emulator.url}/openai/deployments/gpt-4o-fr/chat/completions`;
      const body = JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] });
      const missing = await fetch(path, { method: 'POST', headers: { 'api-key': 'k', 'content-type': 'application/json' }, body });
      expect(missing.status).toBe(404);
      expect(await missing.json()).toEqual({ error: { code: '404', message: 'Resource not found' } });

      const unauthorized = await fetch(`${path}?api-version=2024-10-21`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      expect(unauthorized.status).toBe(401);
      expect(unauthorized.headers.get('x-ms-region')).toBe('France Central');
    });

    it('takes the key only from api-key: a key sent as a Bearer token is refused with 401, as Azure refuses it', async () => {
      const path = `${emulator.url}/openai/deployments/gpt-4o-fr/chat/completions?api-version=2024-10-21`;
      const body = JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] });
      const bearer = await fetch(path, { method: 'POST', headers: { authorization: 'Bearer azure-test-key', 'content-type': 'application/json' }, body });
      expect(bearer.status).toBe(401);
      expect(await bearer.json()).toEqual({ error: { code: '401', message: expect.stringMatching(/^Unauthorized\. Access token is missing, invalid/) } });
      const keyed = await fetch(path, { method: 'POST', headers: { 'api-key': 'azure-test-key', 'content-type': 'application/json' }, body });
      expect(keyed.status).toBe(200);
      expect(emulator.requests().map((r) => [r.status, r.apiKey])).toEqual([
        [401, undefined],
        [200, 'azure-test-key'],
      ]);

      // The SDK's own mistake, the way a client might make it: the key passed as an Entra ID token provider.
      const misconfigured = new AzureOpenAI({ endpoint: emulator.url, azureADTokenProvider: async () => 'azure-test-key', apiVersion: '2024-10-21', deployment: 'gpt-4o-fr', maxRetries: 0 });
      await expect(misconfigured.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] })).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    });

    it('answers x-ms-region with display names for slugs and display names alike', async () => {
      const regional = await startOpenAIEmulator({
        azureRegions: { 'dz-eu': 'germanywestcentral', global: 'eastus', 'us-2': 'eastus2', named: 'West Europe' },
        defaultAzureRegion: 'italynorth',
      });
      try {
        const region = async (deployment: string) =>
          (await fetch(`${regional.url}/openai/deployments/${deployment}/chat/completions?api-version=2024-10-21`, {
            method: 'POST',
            headers: { 'api-key': 'k', 'content-type': 'application/json' },
            body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] }),
          })).headers.get('x-ms-region');
        expect([await region('dz-eu'), await region('global'), await region('us-2'), await region('named'), await region('other')]).toEqual([
          'Germany West Central',
          'East US',
          'East US 2',
          'West Europe',
          'Italy North',
        ]);
      } finally {
        await regional.close();
      }
      expect(
        ['swedencentral', 'germanywestcentral', 'westeurope', 'francecentral', 'northeurope', 'eastus', 'eastus2', 'italynorth', 'polandcentral', 'spaincentral', 'switzerlandnorth'].map(
          azureRegionDisplayName,
        ),
      ).toEqual(['Sweden Central', 'Germany West Central', 'West Europe', 'France Central', 'North Europe', 'East US', 'East US 2', 'Italy North', 'Poland Central', 'Spain Central', 'Switzerland North']);
      expect(azureRegionDisplayName('Sweden Central')).toBe('Sweden Central');
    });
  });

  describe('faults and latency', () => {
    it('fails the next call on one endpoint with 429 and retry-after, seen by the SDK', async () => {
      emulator.failNext({ status: 429, retryAfterSeconds: 7, endpoint: 'openai-eu' });
      const ask = (endpoint: string) => openai(endpoint).chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] });

      await expect(ask('openai-us')).resolves.toBeDefined();
      const error = await ask('openai-eu').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OpenAI.RateLimitError);
      const rateLimit = error as InstanceType<typeof OpenAI.RateLimitError>;
      expect(rateLimit.status).toBe(429);
      expect(rateLimit.headers?.get('retry-after')).toBe('7');
      expect(rateLimit.code).toBe('rate_limit_exceeded');
      expect(rateLimit.requestID).toMatch(/^req_/);
      await expect(ask('openai-eu')).resolves.toBeDefined();

      expect(emulator.requests({ endpoint: 'openai-eu' }).map((r) => [r.status, r.fault])).toEqual([
        [429, 'error'],
        [200, undefined],
      ]);
    });

    it('lets the SDK retry an injected 503 on an Azure deployment', async () => {
      emulator.failNext({ status: 503, times: 2, deployment: 'gpt-4o-fr', retryAfterSeconds: 0 });
      const completion = await azure('gpt-4o-fr', { maxRetries: 2 }).chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'again' }] });

      expect(completion.choices[0].message.content).toBe('Echo: again');
      expect(emulator.requests().map((r) => r.status)).toEqual([503, 503, 200]);
    });

    it('marks a stream the client abandoned mid-way as aborted', async () => {
      emulator.setLatency({ latencyPerTokenMs: 20 });
      const stream = await openai().chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: '#tokens=200 long answer' }], stream: true });
      let received = 0;
      for await (const chunk of stream) {
        if (chunk.choices[0]?.delta?.content) received++;
        if (received === 3) break; // the SDK aborts the request
      }

      const record = await emulator.waitForRequest({ aborted: true });
      expect(record).toMatchObject({ stream: true, status: 200, completed: false, aborted: true });
      expect(record.completionTokens).toBeLessThan(200);
    });

    it('marks an aborted request that hangs as aborted, and times out the SDK', async () => {
      emulator.hangNext({ times: 2 });
      const controller = new AbortController();
      const pending = openai().chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hello?' }] }, { signal: controller.signal });
      await emulator.waitForRequest({ model: 'gpt-4o' });
      controller.abort();
      await expect(pending).rejects.toBeInstanceOf(OpenAI.APIUserAbortError);
      const hung = await emulator.waitForRequest({ aborted: true });
      expect(hung.fault).toBe('hang');
      expect(hung.status).toBeUndefined(); // nothing was ever answered

      // The SDK's timeout fires. (Under jest's VM realm undici's AbortError is no `instanceof Error` there, so the
      // SDK reports a plain APIConnectionError instead of its subclass APIConnectionTimeoutError; in Node it is the latter.)
      await expect(openai(undefined, { timeout: 150 }).chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] })).rejects.toBeInstanceOf(
        OpenAI.APIConnectionError,
      );
      await emulator.waitForRequest((r) => r.aborted && r.messages[0]?.content === 'x');
      // Hangs used up: the next call answers.
      await expect(openai().chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'y' }] })).resolves.toBeDefined();
    });

    it('stalls a stream after some tokens', async () => {
      emulator.hangNext({ afterTokens: 2 });
      const stream = await openai().chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'one two three four' }], stream: true });
      const iterator = stream[Symbol.asyncIterator]();
      const contents: string[] = [];
      for (;;) {
        const next = await Promise.race([iterator.next(), new Promise<'idle'>((r) => setTimeout(() => r('idle'), 300))]);
        if (next === 'idle' || next.done) break;
        if (next.value.choices[0]?.delta?.content) contents.push(next.value.choices[0].delta.content);
      }
      expect(contents.join('')).toBe('Echo: one');
      stream.controller.abort();
      expect(await emulator.waitForRequest({ aborted: true })).toMatchObject({ fault: 'hang', completionTokens: 2 });
    });

    it('delays the first token per endpoint', async () => {
      emulator.setLatency({ endpoint: 'openai-slow', firstTokenLatencyMs: 250 });
      const ask = async (endpoint: string) => {
        const started = Date.now();
        await openai(endpoint).chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] });
        return Date.now() - started;
      };
      expect(await ask('openai-slow')).toBeGreaterThanOrEqual(240);
      expect(await ask('openai-fast')).toBeLessThan(200);
    });

    it('refuses a wrong key when one is configured', async () => {
      const strict = await startOpenAIEmulator({ apiKey: 'sk-right' });
      try {
        const client = new OpenAI({ baseURL: strict.openaiBaseUrl(), apiKey: 'sk-wrong-key', maxRetries: 0 });
        await expect(client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] })).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
        expect(strict.requests()[0]).toMatchObject({ status: 401, apiKey: 'sk-wrong-key' });
      } finally {
        await strict.close();
      }
    });
  });

  describe('over HTTP', () => {
    it('injects faults, lists and clears requests', async () => {
      const faults = await fetch(`${emulator.url}/__emulator/faults`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ status: 500, times: 1 }),
      });
      expect(faults.status).toBe(204);
      await expect(openai().chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] })).rejects.toBeInstanceOf(OpenAI.InternalServerError);

      const listed = (await (await fetch(`${emulator.url}/__emulator/requests?kind=openai`)).json()) as { data: { status: number; fault?: string }[] };
      expect(listed.data).toEqual([expect.objectContaining({ status: 500, fault: 'error' })]);

      expect((await fetch(`${emulator.url}/__emulator/requests`, { method: 'DELETE' })).status).toBe(204);
      expect(emulator.requests()).toEqual([]);
    });
  });
});
