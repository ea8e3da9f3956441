import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import OpenAI from 'openai';
import type { OpenAIEmulator } from '@ally/emulators';
import { gatewayService } from '@ally/gateway';
import { httpClient } from '@ally/testing';
import { startChatWorld, type ChatWorld } from './chat-world.js';
import { expectProblem } from './problem-assertions.js';

const PASSWORD = 'Nebel über der Heide';

/** The error an OpenAI SDK call failed with. */
const failure = (p: Promise<unknown>) => p.then(() => { throw new Error('expected an error'); }, (e) => e as InstanceType<typeof OpenAI.APIError>);

/** Edges found probing chat as users do: OpenAI request fields that change the answer, the Accept header, pages of assistants, the OpenAPI query parameters. */
describe('chat edges', () => {
  let world: ChatWorld;
  let llm: OpenAIEmulator;
  let base: string;
  let http: ReturnType<typeof httpClient>;
  let token: string;

  const lastCompletion = () => llm.requests({ operation: 'chat.completions' }).at(-1)!;

  beforeAll(async () => {
    world = await startChatWorld();
    ({ llm, base, http } = world);
    token = (await http.post('/v1/auth/register', { email: 'ines@example.eu', password: PASSWORD, firstName: 'Ines', lastName: 'Vogt' })).body.accessToken;
  });

  afterAll(async () => {
    await world?.close();
  });

  afterEach(() => llm.reset());

  it('passes stop, presence_penalty, frequency_penalty, seed and logit_bias of /v1/chat/completions on to the deployment (they change the answer; they were dropped)', async () => {
    const key = (await http.post('/v1/me/api-keys', { name: 'sdk', workspace: 'private' }, token)).body.key as string;
    const client = new OpenAI({ apiKey: key, baseURL: `${base}/v1` });
    const fields = { stop: ['\n\n', 'END'], presence_penalty: 0.5, frequency_penalty: -0.25, seed: 42, logit_bias: { '50256': -100 } };

    const answer = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hallo' }], ...fields });
    expect(answer.choices[0].message.content).toBe('Echo: Hallo');
    // Taken from the deployment as a stream (an answer stopped halfway then still has its tokens counted).
    expect(lastCompletion().body).toMatchObject({ ...fields, store: false, stream: true, stream_options: { include_usage: true } });

    const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hallo' }], stream: true, stop: 'END', seed: 7 });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    expect(text).toBe('Echo: Hallo');
    expect(lastCompletion().body).toMatchObject({ stop: 'END', seed: 7, stream: true });

    // null is the default, as OpenAI takes it; nothing is sent on.
    expect((await http.post('/v1/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }], stop: null, seed: null }, key)).status).toBe(200);
    expect(lastCompletion().body).not.toHaveProperty('stop');
    expect(lastCompletion().body).not.toHaveProperty('seed');

    const calls = llm.requests({ operation: 'chat.completions' }).length;
    for (const [field, value] of [['stop', ['a', 'b', 'c', 'd', 'e']], ['stop', 5], ['stop', ''], ['presence_penalty', 3], ['frequency_penalty', 'high'], ['seed', 1.5]] as const) {
      expectProblem(await http.post('/v1/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }], [field]: value }, key), 400, [field]);
    }
    const tooMany = await http.post('/v1/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }], stop: ['a', 'b', 'c', 'd', 'e'] }, key);
    expect(tooMany.body.errors).toEqual([{ field: 'stop', message: 'must be a stop sequence (1 to 200 characters) or a list of 1 to 4 of them' }]);
    // A logit bias keyed by anything but a token id, or beyond ±100, names that entry.
    for (const [bias, field] of [[{ word: 1 }, 'logit_bias.word'], [{ '50256': 101 }, 'logit_bias.50256']] as const) {
      expectProblem(await http.post('/v1/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }], logit_bias: bias }, key), 400, [field]);
    }
    expect(llm.requests({ operation: 'chat.completions' })).toHaveLength(calls);
  });

  it("takes /v1/chat/completions' history as the caller sent it: a long run of one character is counted at once, one that does not fit is a 400, not a silent trim", async () => {
    const key = (await http.post('/v1/me/api-keys', { name: 'history', workspace: 'private' }, token)).body.key as string;
    const ask = (body: Record<string, unknown>) => http.post('/v1/chat/completions', { model: 'gpt-4o-mini', ...body }, key);

    // 100,000 emoji: 400 kB, over the window in bytes, so they are counted (this took the tokenizer 40 s and stalled every user of the replica).
    const emoji = '😀'.repeat(50_000);
    expect((await ask({ messages: [{ role: 'user', content: emoji }] })).status).toBe(200);

    // System messages alone that fit are a prompt like any other (they were a 413), and keep their places.
    const long = 'wort '.repeat(20_000);
    expect((await ask({ messages: [{ role: 'system', content: long }, { role: 'system', content: long }] })).status).toBe(200);
    const middle = [{ role: 'system', content: 'FIRST' }, { role: 'user', content: 'a' }, { role: 'system', content: 'MIDDLE' }, { role: 'user', content: 'b' }];
    expect((await ask({ messages: middle })).status).toBe(200);
    expect((lastCompletion().body as { messages: { content: string }[] }).messages.map((m) => m.content)).toEqual(['FIRST', 'a', 'MIDDLE', 'b']);

    const calls = llm.requests({ operation: 'chat.completions' }).length;
    // More than the context window: refused naming the messages, as OpenAI does, instead of dropping the oldest.
    const turns = Array.from({ length: 10 }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: `${i}${' a'.repeat(15_000)}` }));
    const tooLong = await ask({ messages: turns });
    expectProblem(tooLong, 400, ['messages']);
    expect(tooLong.body.type).toBe('https://ally.eu/problems/context-length-exceeded');
    // No room left beside max_tokens: the same 400 (was a 413 naming a `content` the request does not have).
    expectProblem(await ask({ messages: [{ role: 'user', content: 'Hallo' }], max_tokens: 127_999 }), 400, ['messages']);
    // Text parts are one message: together within the limit of one string.
    const part = { type: 'text', text: 'wort '.repeat(20_000) };
    expectProblem(await ask({ messages: [{ role: 'user', content: [part, part, part] }] }), 400, ['messages.0.content']);
    expect(llm.requests({ operation: 'chat.completions' })).toHaveLength(calls);
  });

  it("gives the OpenAI SDK its error member beside the problem: message, type, param and code as OpenAI's clients read them", async () => {
    const key = (await http.post('/v1/me/api-keys', { name: 'errors', workspace: 'private' }, token)).body.key as string;
    const client = new OpenAI({ apiKey: key, baseURL: `${base}/v1`, maxRetries: 0 });

    const two = await failure(client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }], n: 2 }));
    expect(two).toBeInstanceOf(OpenAI.BadRequestError);
    expect({ message: two.message, type: two.type, param: two.param }).toEqual({ message: expect.stringMatching(/^400 .*n/), type: 'invalid_request_error', param: 'n' });
    expect(two.message).not.toContain('{');

    const tooLong = await failure(client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hallo' }], max_tokens: 127_999 }));
    expect({ code: tooLong.code, param: tooLong.param }).toEqual({ code: 'context_length_exceeded', param: 'messages' });

    const stranger = new OpenAI({ apiKey: 'ally_not-a-key-at-all', baseURL: `${base}/v1`, maxRetries: 0 });
    const denied = await failure(stranger.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }));
    expect(denied).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(denied.type).toBe('authentication_error');

    const missing = await failure(client.models.retrieve('no-such-model'));
    expect(missing).toBeInstanceOf(OpenAI.NotFoundError);
    expect(missing.message).toMatch(/^404 The model "no-such-model" does not exist/);

    // Still problem+json for everyone else.
    expectProblem(await http.post('/v1/chat/completions', { model: 'gpt-4o-mini', messages: [] }, key), 400, ['messages']);
  });

  it("gives the SDK OpenAI's error member for errors no route raised: the body limit, the content type, bad JSON, a path Ally does not serve, the rate limit", async () => {
    const key = (await http.post('/v1/me/api-keys', { name: 'edges', workspace: 'private' }, token)).body.key as string;
    const client = new OpenAI({ apiKey: key, baseURL: `${base}/v1`, maxRetries: 0 });
    const read = (e: InstanceType<typeof OpenAI.APIError>) => ({ status: e.status, type: e.type, message: e.message });

    // Over the body limit (1 MiB): Fastify's 413, once "413 {"type":"about:blank",…}" with err.type "about:blank".
    const big = await failure(client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'wort '.repeat(250_000) }] }));
    expect(read(big)).toEqual({ status: 413, type: 'invalid_request_error', message: '413 Request body is too large' });
    for (const call of [
      client.embeddings.create({ model: 'text-embedding-3-small', input: 'x' }),
      client.completions.create({ model: 'gpt-4o-mini', prompt: 'x' }),
      client.responses.create({ model: 'gpt-4o-mini', input: 'x' }),
    ]) {
      const missing = await failure(call);
      expect(missing).toBeInstanceOf(OpenAI.NotFoundError);
      expect(read(missing)).toEqual({ status: 404, type: 'not_found_error', message: expect.stringMatching(/^404 Cannot POST \/v1\/(embeddings|completions|responses)$/) });
    }

    // Raw requests no SDK sends: still problem+json, with the error member beside it.
    const raw = (path: string, body: string, contentType: string) => http.request('POST', path, { raw: body, token: key, headers: { 'content-type': contentType } });
    for (const [res, status] of [[await raw('/v1/chat/completions', '{"model":', 'application/json'), 400], [await raw('/v1/chat/completions', '{}', 'text/plain'), 415]] as const) {
      expectProblem(res, status);
      expect(res.body.error).toEqual({ message: res.body.detail, type: 'invalid_request_error', param: null, code: null });
    }
    // Ally's own routes, and paths outside /v1, answer the problem alone.
    expect((await raw('/v1/conversations', '{}', 'text/plain')).body).not.toHaveProperty('error');
    expect((await http.get('/nothing-here', key)).body).not.toHaveProperty('error');

    // The gateway's own rate limit: a rate_limit_error, and Retry-After still says when.
    const limited = new OpenAI({ apiKey: key, baseURL: `${(await world.env.start(gatewayService, { RATE_LIMIT_PER_MINUTE: '2' })).url}/v1`, maxRetries: 0 });
    let tooMany: InstanceType<typeof OpenAI.APIError> | undefined;
    for (let i = 0; i < 5 && !tooMany; i++) tooMany = await limited.models.list().then(() => undefined, (e) => e);
    expect(read(tooMany!)).toEqual({ status: 429, type: 'rate_limit_error', message: expect.stringMatching(/^429 Too many requests; retry in \d+ seconds$/) });
    expect(Number(tooMany!.headers?.get('retry-after'))).toBeGreaterThan(0);
  });

  it('keeps the boundary between text parts (a line break, as vLLM joins them), and refuses a message of no parts', async () => {
    const key = (await http.post('/v1/me/api-keys', { name: 'parts', workspace: 'private' }, token)).body.key as string;
    const client = new OpenAI({ apiKey: key, baseURL: `${base}/v1`, maxRetries: 0 });
    await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: [{ type: 'text', text: 'Hello' }, { type: 'text', text: 'World' }] }] });
    expect((lastCompletion().body as { messages: { content: string }[] }).messages[0].content).toBe('Hello\nWorld'); // was "HelloWorld"

    const calls = llm.requests({ operation: 'chat.completions' }).length;
    // No parts was sent on as "" (and billed).
    const none = await http.post('/v1/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: [] }] }, key);
    expectProblem(none, 400, ['messages.0.content']);
    expect(none.body.errors[0].message).toBe('must hold at least one part');
    expect(llm.requests({ operation: 'chat.completions' })).toHaveLength(calls);
  });

  it('names what the caller sent in its errors: max_completion_tokens, n below 1, an unknown model (code model_not_found)', async () => {
    const key = (await http.post('/v1/me/api-keys', { name: 'names', workspace: 'private' }, token)).body.key as string;
    const client = new OpenAI({ apiKey: key, baseURL: `${base}/v1`, maxRetries: 0 });

    const noRoom = await failure(client.chat.completions.create({ model: 'mistral-small', messages: [{ role: 'user', content: 'x' }], max_completion_tokens: 40_000 }));
    expect({ param: noRoom.param, message: noRoom.message }).toEqual({ param: 'max_completion_tokens', message: expect.stringMatching(/^400 max_completion_tokens leaves no room/) });
    // max_tokens is still named when that is what was sent.
    expect((await failure(client.chat.completions.create({ model: 'mistral-small', messages: [{ role: 'user', content: 'x' }], max_tokens: 40_000 }))).param).toBe('max_tokens');

    const zero = await http.post('/v1/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }], n: 0 }, key);
    expectProblem(zero, 400, ['n']);
    expect(zero.body.errors[0].message).toMatch(/^must be 1 /); // was "is not supported by Ally above 1"

    const unknown = await failure(client.chat.completions.create({ model: 'gpt-9', messages: [{ role: 'user', content: 'x' }] }));
    expect({ status: unknown.status, code: unknown.code, param: unknown.param }).toEqual({ status: 404, code: 'model_not_found', param: 'model' });
    expect((await failure(client.models.retrieve('gpt-9'))).code).toBe('model_not_found');
  });

  it('refuses what OpenAI refuses or Ally cannot honour: stream_options without streaming, web search, predicted outputs, reasoning effort', async () => {
    const key = (await http.post('/v1/me/api-keys', { name: 'refusals', workspace: 'private' }, token)).body.key as string;
    const ask = (extra: Record<string, unknown>) => http.post('/v1/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }], ...extra }, key);
    expectProblem(await ask({ stream: false, stream_options: { include_usage: true } }), 400, ['stream_options']);
    expectProblem(await ask({ stream_options: { include_usage: true } }), 400, ['stream_options']);
    expectProblem(await ask({ web_search_options: {} }), 400, ['web_search_options']);
    expectProblem(await ask({ prediction: { type: 'content', content: 'x' } }), 400, ['prediction']);
    expectProblem(await ask({ reasoning_effort: 'high' }), 400, ['reasoning_effort']);
    // Left alone (null) they are no request at all, as clients send them.
    expect((await ask({ stream: false, stream_options: null, web_search_options: null, reasoning_effort: null })).status).toBe(200);
  });

  it('takes only "Bearer <token>": the scheme in any case, nothing after the token', async () => {
    const key = (await http.post('/v1/me/api-keys', { name: 'header', workspace: 'private' }, token)).body.key as string;
    const models = (authorization: string) => http.request('GET', '/v1/models', { headers: { authorization } });
    expect((await models(`bearer ${key}`)).status).toBe(200);
    // The key with something after it was taken as the key.
    const extra = await models(`Bearer ${key} extra`);
    expectProblem(extra, 401);
    expect(extra.body.detail).toMatch(/^The Authorization header must be "Bearer <token>"/);
    expect(extra.body.error.type).toBe('authentication_error');
  });

  it('takes null for the fields OpenAI allows to be null (n, stream, stream_options, logprobs, response_format, tools)', async () => {
    const key = (await http.post('/v1/me/api-keys', { name: 'nulls', workspace: 'private' }, token)).body.key as string;
    for (const field of ['n', 'stream', 'stream_options', 'logprobs', 'response_format', 'tools', 'modalities']) {
      const res = await http.post('/v1/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }], [field]: null }, key);
      expect({ field, status: res.status, object: res.body.object }).toEqual({ field, status: 200, object: 'chat.completion' });
    }
  });

  it('streams for an Accept header in any case (media types are case-insensitive), as its weights say', async () => {
    const conversation = (await http.post('/v1/conversations', { workspace: 'private' }, token)).body.id;
    for (const accept of ['TEXT/EVENT-STREAM', 'Text/Event-Stream; charset=utf-8']) {
      const res = await fetch(`${base}/v1/conversations/${conversation}/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept },
        body: JSON.stringify({ content: 'Guten Morgen' }),
      });
      expect({ status: res.status, type: res.headers.get('content-type')?.split(';')[0] }).toEqual({ status: 200, type: 'text/event-stream' });
      const text = await res.text();
      expect(text).toContain('event: delta');
      expect(text).toContain('event: done');
    }
    // Weights count: a stream refused (q=0) or liked less than JSON is a JSON answer.
    for (const accept of ['text/event-stream;q=0', 'text/event-stream; charset=utf-8; q=0', 'application/json;q=1, text/event-stream;q=0.1', 'text/event-stream;q=0.9, application/json', '*/*']) {
      const res = await fetch(`${base}/v1/conversations/${conversation}/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept },
        body: JSON.stringify({ content: 'Guten Morgen' }),
      });
      expect({ accept, status: res.status, type: res.headers.get('content-type')?.split(';')[0] }).toEqual({ accept, status: 201, type: 'application/json' });
      await res.text();
    }
  });

  it('pages assistants with ?limit=&cursor= like every list (limit was a 400), only the caller\'s private ones', async () => {
    for (const name of ['Eins', 'Zwei', 'Drei', 'Vier', 'Fünf']) {
      expect((await http.post('/v1/assistants', { workspace: 'private', name, instructions: `Du bist ${name}.` }, token)).status).toBe(201);
    }
    const other = (await http.post('/v1/auth/register', { email: 'jan@example.eu', password: PASSWORD, firstName: 'Jan', lastName: 'Horn' })).body.accessToken;
    expect((await http.post('/v1/assistants', { workspace: 'private', name: 'Fremd', instructions: 'x' }, other)).status).toBe(201);

    const names: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: { status: number; body: any } = await http.get(`/v1/assistants?workspace=private&limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, token);
      expect(page.status).toBe(200);
      expect(page.body.data.length).toBeLessThanOrEqual(2);
      names.push(...page.body.data.map((a: { name: string }) => a.name));
      cursor = page.body.nextCursor;
      pages++;
    } while (cursor && pages < 10);
    expect(names).toEqual(['Fünf', 'Vier', 'Drei', 'Zwei', 'Eins']);
    expect(pages).toBe(3);

    // Without limit: the first page of 20, as before for anyone with fewer.
    expect((await http.get('/v1/assistants?workspace=private', token)).body).toMatchObject({ data: expect.any(Array), nextCursor: null });
    expect((await http.get('/v1/assistants?workspace=private', other)).body.data.map((a: { name: string }) => a.name)).toEqual(['Fremd']);
    expectProblem(await http.get('/v1/assistants?workspace=private&limit=0', token), 400, ['limit']);
    expectProblem(await http.get('/v1/assistants?workspace=private&cursor=nonsense', token), 400, ['cursor']);
  });

  it('documents the query parameters of the chat lists in the OpenAPI document', async () => {
    const doc = (await http.get('/docs/openapi.json')).body;
    const params = (path: string) => (doc.paths[path].get.parameters ?? []).filter((p: { in: string }) => p.in === 'query').map((p: { name: string; required?: boolean }) => `${p.name}${p.required ? '!' : ''}`).sort();
    expect(params('/v1/models')).toEqual(['workspace']);
    expect(params('/v1/conversations')).toEqual(['cursor', 'limit', 'workspace!']);
    expect(params('/v1/conversations/{id}')).toEqual(['cursor', 'limit']);
    expect(params('/v1/assistants')).toEqual(['cursor', 'limit', 'workspace!']);
  });
});
