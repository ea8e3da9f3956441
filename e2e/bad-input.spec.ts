import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { chatService } from '@ally/chat';
import { startOpenAIEmulator, type OpenAIEmulator } from '@ally/emulators';
import { gatewayService } from '@ally/gateway';
import { identityService } from '@ally/identity';
import { privacyService } from '@ally/privacy';
import { createTestEnv, httpClient, lastEvent, type HttpResult, type RunningService, type TestEnv } from '@ally/testing';
import { expectProblem } from './problem-assertions.js';
import { chatEnv } from './service-env.js';

/**
 * Bad input on every identity route of API.md answers a 4xx problem that says
 * what is wrong (and, for validation, lists the bad fields), never a 5xx; so
 * does free text and paging elsewhere that would otherwise reach Postgres.
 */
const PASSWORD = 'Sommerwiese am Fluss 2026';
const LONG = 'a'.repeat(10_000);
const TOKEN = 'x'.repeat(43);
const UNKNOWN = '0b7c7b7e-7a53-4c1e-9d43-3f1f0d7f9c11';

let env: TestEnv;
let llm: OpenAIEmulator;
let identity: RunningService;
let http: ReturnType<typeof httpClient>;
/** Jana owns `orgId`; both she and Piotr are signed in. */
let jana: { id: string; accessToken: string; refreshToken: string };
let piotr: { id: string; accessToken: string };
let orgId: string;
let seq = 0;
const freshEmail = () => `user${++seq}.${randomUUID().slice(0, 8)}@example.eu`;

beforeAll(async () => {
  env = await createTestEnv();
  llm = await startOpenAIEmulator();
  identity = await env.start(identityService);
  await env.start(chatService, chatEnv(llm, { QUOTA_PROVIDER: 'none' }));
  await env.start(privacyService);
  // This file sends far more auth requests than a person would; the limits have their own spec.
  const gateway = await env.start(gatewayService, { AUTH_RATE_LIMIT_PER_MINUTE: '100000', RATE_LIMIT_PER_MINUTE: '100000' });
  http = httpClient(gateway.url);
  const a = await http.post('/v1/auth/register', { email: 'jana@example.eu', password: PASSWORD, firstName: 'Jana', lastName: 'Novák' });
  expect(a.status).toBe(201);
  jana = { id: a.body.user.id, accessToken: a.body.accessToken, refreshToken: a.body.refreshToken };
  const b = await http.post('/v1/auth/register', { email: 'piotr@example.eu', password: PASSWORD, firstName: 'Piotr', lastName: 'Kowalski' });
  expect(b.status).toBe(201);
  piotr = { id: b.body.user.id, accessToken: b.body.accessToken };
  const org = await http.post('/v1/orgs', { name: 'Novák Consulting GmbH' }, jana.accessToken);
  expect(org.status).toBe(201);
  orgId = org.body.id;
});

afterAll(async () => {
  await env?.close();
  await llm?.close();
});

interface BodyRoute {
  method: 'POST' | 'PATCH';
  path: () => string;
  /** Needs a bearer token. */
  auth: boolean;
  /** A body that passes validation (it may still fail later, e.g. an unknown token). */
  valid: () => Record<string, unknown>;
  /** Fields that must be present (routes with only optional fields need at least one). */
  required: string[];
  /** Fields for which null is a value (it clears them), not a wrong type. */
  nullable?: string[];
}

const bodyRoutes: BodyRoute[] = [
  {
    method: 'POST',
    path: () => '/v1/auth/register',
    auth: false,
    valid: () => ({ email: freshEmail(), password: PASSWORD, firstName: 'Jana', lastName: 'Novák', locale: 'en', organizationName: 'Acme GmbH' }),
    required: ['email', 'password', 'firstName', 'lastName'],
  },
  { method: 'POST', path: () => '/v1/auth/verify-email', auth: false, valid: () => ({ token: TOKEN }), required: ['token'] },
  { method: 'POST', path: () => '/v1/auth/login', auth: false, valid: () => ({ email: freshEmail(), password: PASSWORD }), required: ['email', 'password'] },
  { method: 'POST', path: () => '/v1/auth/refresh', auth: false, valid: () => ({ refreshToken: TOKEN }), required: ['refreshToken'] },
  { method: 'POST', path: () => '/v1/auth/logout', auth: false, valid: () => ({ refreshToken: TOKEN }), required: ['refreshToken'] },
  { method: 'POST', path: () => '/v1/auth/password/forgot', auth: false, valid: () => ({ email: freshEmail() }), required: ['email'] },
  { method: 'POST', path: () => '/v1/auth/password/reset', auth: false, valid: () => ({ token: TOKEN, password: PASSWORD }), required: ['token', 'password'] },
  { method: 'PATCH', path: () => '/v1/me', auth: true, valid: () => ({ firstName: 'Jana', lastName: 'Novák', locale: 'de' }), required: [] },
  { method: 'PATCH', path: () => '/v1/me/settings', auth: true, valid: () => ({ restrictToEu: true }), required: ['restrictToEu'] },
  { method: 'POST', path: () => '/v1/me/api-keys', auth: true, valid: () => ({ name: 'CLI', workspace: 'private' }), required: ['name', 'workspace'] },
  { method: 'POST', path: () => '/v1/orgs', auth: true, valid: () => ({ name: 'Acme GmbH' }), required: ['name'] },
  { method: 'POST', path: () => `/v1/orgs/${orgId}/invitations`, auth: true, valid: () => ({ email: freshEmail(), role: 'member' }), required: ['email', 'role'] },
  { method: 'POST', path: () => '/v1/invitations/accept', auth: true, valid: () => ({ token: TOKEN }), required: ['token'] },
  {
    method: 'PATCH',
    path: () => `/v1/orgs/${orgId}/policy`,
    auth: true,
    valid: () => ({ euOnly: true, allowedModels: ['mistral-small'], chatRetentionDays: 30 }),
    required: [],
    nullable: ['allowedModels', 'chatRetentionDays'],
  },
];

const named = (r: BodyRoute) => `${r.method} ${r.path().replace(/[0-9a-f-]{36}/, ':orgId')}`;
const send = (r: BodyRoute, opts: { body?: unknown; raw?: string; headers?: Record<string, string> } = {}): Promise<HttpResult> =>
  http.request(r.method, r.path(), { ...opts, token: r.auth ? jana.accessToken : undefined });

/** What each field is, to send it the wrong type. */
const wrongTypeFor = (value: unknown): unknown[] =>
  typeof value === 'string' ? [12345, true, null, { $ne: '' }, ['a']] : typeof value === 'boolean' ? ['true', 1, null] : typeof value === 'number' ? ['30', true, null] : ['x', 5, { a: 1 }];

describe.each(bodyRoutes.map((r) => [named(r), r] as const))('%s', (_name, route) => {
  it('answers 400 naming the required fields when the body is missing or empty', async () => {
    for (const res of [await send(route), await send(route, { body: {} }), await send(route, { body: null })]) {
      expectProblem(res, 400, route.required.length ? route.required : ['(body)']);
      for (const field of route.required) expect(res.body.errors).toContainEqual({ field, message: 'is required' });
    }
  });

  it('answers 400 when the body is not an object', async () => {
    for (const body of [[], ['email'], 'hello', 42, true]) expectProblem(await send(route, { body }), 400, ['(body)']);
  });

  it('answers 400 naming each field of the wrong type', async () => {
    const valid = route.valid();
    for (const [field, value] of Object.entries(valid)) {
      for (const wrong of wrongTypeFor(value)) {
        if (wrong === null && route.nullable?.includes(field)) continue;
        expectProblem(await send(route, { body: { ...valid, [field]: wrong } }), 400, [field]);
      }
    }
  });

  it('answers 400 naming an unknown extra field', async () => {
    const res = await send(route, { body: { ...route.valid(), isAdmin: true, role_: 'owner' } });
    expectProblem(res, 400, ['isAdmin', 'role_']);
    expect(res.body.errors).toContainEqual({ field: 'isAdmin', message: 'is not a known field' });
  });

  it('answers 400 naming every 10k-character string', async () => {
    const valid = route.valid();
    for (const [field, value] of Object.entries(valid)) {
      if (typeof value !== 'string' && !Array.isArray(value)) continue;
      const long = Array.isArray(value) ? [LONG] : LONG;
      const res = await send(route, { body: { ...valid, [field]: long } });
      expectProblem(res, 400, [Array.isArray(value) ? `${field}.0` : field]);
    }
  });

  if (route.auth) {
    it('answers 401 without a token, before looking at the body', async () => {
      for (const body of [undefined, {}, route.valid()]) {
        expectProblem(await http.request(route.method, route.path(), { body }), 401);
      }
    });
  }
});

describe('emails', () => {
  const bad = ['not-an-email', 'jana@', '@example.eu', 'jana@example', 'jana example@example.eu', 'jana@@example.eu', 'jana@exa mple.eu', `${'a'.repeat(250)}@example.eu`, '', '   '];

  it.each([
    ['/v1/auth/register', (email: string) => ({ email, password: PASSWORD, firstName: 'Jana', lastName: 'Novák' }), false],
    ['/v1/auth/login', (email: string) => ({ email, password: PASSWORD }), false],
    ['/v1/auth/password/forgot', (email: string) => ({ email }), false],
    ['invitations', (email: string) => ({ email, role: 'admin' }), true],
  ] as const)('%s refuses invalid addresses with 400 naming email', async (path, body, auth) => {
    for (const email of bad) {
      const url = path === 'invitations' ? `/v1/orgs/${orgId}/invitations` : path;
      const res = await http.post(url, body(email), auth ? jana.accessToken : undefined);
      expectProblem(res, 400, ['email']);
    }
  });
});

describe('passwords', () => {
  const cases: [string, string][] = [
    ['short', 'kurz1!'],
    ['long', 'P'.repeat(257)],
    ['common', 'password1234'],
    ['common with decoration', '!!Password123456'],
    ['repeated', 'abcabcabcabc'],
    ['based on the name', 'Kowalski2026'],
  ];

  it.each(cases)('register refuses a %s password with 400 naming password', async (_what, password) => {
    const res = await http.post('/v1/auth/register', { email: freshEmail(), password, firstName: 'Jana', lastName: 'Kowalski' });
    expectProblem(res, 400, ['password']);
  });

  it('says once what is wrong with a blank name or organisation name (it said it twice: "is required" and "must be a real name")', async () => {
    const res = await http.post('/v1/auth/register', { email: freshEmail(), password: PASSWORD, firstName: '  ', lastName: 'Berg', organizationName: '' });
    expectProblem(res, 400, ['firstName', 'organizationName']);
    expect(res.body.errors).toEqual([
      { field: 'firstName', message: 'is required' },
      { field: 'organizationName', message: 'must be at least 2 characters' },
    ]);
  });

  it('reset refuses short, long and common passwords with 400 naming password, and the token stays usable', async () => {
    const email = freshEmail();
    expect((await http.post('/v1/auth/register', { email, password: PASSWORD, firstName: 'Eva', lastName: 'Berg' })).status).toBe(201);
    expect((await http.post('/v1/auth/password/forgot', { email })).status).toBe(202);
    const event = await lastEvent<{ email: string; resetToken: string }>(env, 'identity.password.reset-requested', (e) => e.data.email === email);
    const token = event.data.resetToken;
    for (const [, password] of cases.filter(([what]) => what !== 'based on the name')) {
      expectProblem(await http.post('/v1/auth/password/reset', { token, password }), 400, ['password']);
    }
    expect((await http.post('/v1/auth/password/reset', { token, password: 'Ein ganz neues Passwort 7' })).status).toBe(204);
  });

  it('login with an empty or over-long password is a 400, a wrong one a 401', async () => {
    expectProblem(await http.post('/v1/auth/login', { email: 'jana@example.eu', password: '' }), 400, ['password']);
    expectProblem(await http.post('/v1/auth/login', { email: 'jana@example.eu', password: LONG }), 400, ['password']);
    const wrong = await http.post('/v1/auth/login', { email: 'jana@example.eu', password: 'not her password at all' });
    expectProblem(wrong, 401);
    expect(wrong.body.detail).toMatch(/email address or password/i);
  });
});

describe('names', () => {
  const fake = ['x1', '🙂', 'Jana🙂', '', '   ', '12345', 'Jana2', '<b>Jana</b>', "Robert'); DROP TABLE users;--", '@jana', 'Jana\u0000', 'Ja\nna', '-Jana', "'",
    // Letters to Unicode that print nothing (Hangul and half-width fillers), and one letter under a pile of marks.
    '\u3164', '\u3164\u3164', 'J\u3164', '\u115F', '\uFFA0', 'a' + '\u0301'.repeat(10)];

  it('register refuses fake first and last names with 400 naming the field', async () => {
    for (const name of fake) {
      for (const field of ['firstName', 'lastName']) {
        const res = await http.post('/v1/auth/register', { email: freshEmail(), password: PASSWORD, firstName: 'Jana', lastName: 'Novák', [field]: name });
        expectProblem(res, 400, [field]);
      }
    }
  });

  it('PATCH /v1/me refuses fake names too, and accepts real ones in any script', async () => {
    for (const name of fake) expectProblem(await http.patch('/v1/me', { firstName: name }, piotr.accessToken), 400, ['firstName']);
    for (const name of ['Zoë', "O'Brien", 'Anne-Marie', 'Łukasz', 'Ψυχή', 'Дмитрий', 'J. R.', 'Nguyễn', 'प्रिया', '李']) {
      const res = await http.patch('/v1/me', { firstName: name }, piotr.accessToken);
      expect({ name, status: res.status }).toEqual({ name, status: 200 });
    }
  });
});

describe('free text that reaches the database', () => {
  const nasty = ['Acme\u0000GmbH', 'Acme\u0007', '\u0000\u0000'];

  it('organisation names with control characters are a 400, not a database error', async () => {
    for (const name of nasty) expectProblem(await http.post('/v1/orgs', { name }, jana.accessToken), 400, ['name']);
    expectProblem(await http.post('/v1/auth/register', { email: freshEmail(), password: PASSWORD, firstName: 'Jana', lastName: 'Novák', organizationName: 'A\u0000B' }), 400, ['organizationName']);
    expectProblem(await http.post('/v1/orgs', { name: 'A' }, jana.accessToken), 400, ['name']);
  });

  it('API key names with control characters are a 400', async () => {
    for (const name of nasty) expectProblem(await http.post('/v1/me/api-keys', { name, workspace: 'private' }, jana.accessToken), 400, ['name']);
  });

  it('model names in a policy with control characters are a 400', async () => {
    expectProblem(await http.patch(`/v1/orgs/${orgId}/policy`, { allowedModels: ['mistral\u0000'] }, jana.accessToken), 400, ['allowedModels.0']);
  });

  it('blocked terms in a policy with control characters are a 400', async () => {
    for (const term of nasty) expectProblem(await http.patch(`/v1/orgs/${orgId}/policy`, { blockedTerms: ['Projekt Kranich', term] }, jana.accessToken), 400, ['blockedTerms.1']);
  });

  it('assistant names with control characters and instructions with NUL are a 400; instructions keep their line breaks', async () => {
    const assistant = (body: Record<string, string>) => http.post('/v1/assistants', { workspace: 'private', name: 'Lektorat', instructions: 'Prüfe Texte.', ...body }, jana.accessToken);
    for (const name of nasty) expectProblem(await assistant({ name }), 400, ['name']);
    // A lone surrogate: Postgres mangles it in text and refuses it in jsonb.
    for (const instructions of ['Prüfe\u0000Texte', '\u0000', 'Prüfe \ud800']) expectProblem(await assistant({ instructions }), 400, ['instructions']);
    const instructions = 'Prüfe Texte auf:\n\t- Rechtschreibung\n\t- Ton 🙂';
    const created = await assistant({ instructions });
    expect(created.status).toBe(201);
    expect((await http.get('/v1/assistants?workspace=private', jana.accessToken)).body.data).toContainEqual(expect.objectContaining({ id: created.body.id, instructions }));
  });

  it('message content and conversation titles with NUL or a lone surrogate, or content of only blanks, are a 400 naming the field; content keeps its indentation', async () => {
    const conv = (await http.post('/v1/conversations', { workspace: 'private' }, jana.accessToken)).body.id;
    for (const content of ['a\u0000b', 'a\ud800b', 'x\udc00', '   \n\t ', '']) {
      expectProblem(await http.post(`/v1/conversations/${conv}/messages`, { content }, jana.accessToken), 400, ['content']);
    }
    for (const title of ['t\u0000x', 't\ud800', 'Zeile\nzwei', '   ']) expectProblem(await http.post('/v1/conversations', { workspace: 'private', title }, jana.accessToken), 400, ['title']);
    const code = '  def f():\n\treturn 1  ';
    const answered = await http.post(`/v1/conversations/${conv}/messages`, { content: code }, jana.accessToken);
    expect(answered.status).toBe(201);
    const saved = (await http.get(`/v1/conversations/${conv}`, jana.accessToken)).body.messages;
    expect(saved.find((m: { role: string }) => m.role === 'user').content).toBe(code);
  });

  it('/v1/chat/completions refuses a lone surrogate in a message and the fields that would change the answer Ally gives (n, deprecated functions, log probabilities, audio)', async () => {
    const messages = [{ role: 'user', content: 'Hallo' }];
    const complete = (body: Record<string, unknown>) => http.post('/v1/chat/completions', { model: 'gpt-4o-mini', messages, ...body }, jana.accessToken);
    expectProblem(await complete({ messages: [{ role: 'user', content: 'a\ud800' }] }), 400, ['messages.0.content']);
    const refused: [Record<string, unknown>, string][] = [
      [{ n: 3 }, 'n'],
      [{ functions: [{ name: 'wetter' }] }, 'functions'],
      [{ function_call: 'auto' }, 'function_call'],
      [{ logprobs: true }, 'logprobs'],
      [{ top_logprobs: 2 }, 'top_logprobs'],
      [{ audio: { voice: 'alloy', format: 'wav' } }, 'audio'],
      [{ modalities: ['text', 'audio'] }, 'modalities.1'],
    ];
    for (const [body, field] of refused) {
      const res = await complete(body);
      expectProblem(res, 400, [field]);
      expect(res.body.errors[0].message).toMatch(/not supported by Ally/);
    }
    const plain = await complete({ n: 1, logprobs: false, response_format: { type: 'text' }, modalities: ['text'] });
    expect(plain.status).toBe(200);
    // A response format Ally does not know, or a JSON schema without its name, names the field.
    for (const response_format of [{ type: 'xml' }, { type: 'json_schema', json_schema: { schema: {} } }]) {
      const res = await complete({ response_format });
      expect({ status: res.status, field: res.body.errors?.[0]?.field }).toEqual({ status: 400, field: expect.stringMatching(/^response_format/) });
    }
    // null is the default, as OpenAI takes it.
    expect((await complete({ temperature: null, top_p: null, max_tokens: null, max_completion_tokens: null, user: null })).status).toBe(200);

    const image = await complete({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://example.eu/a.png' } }] }] });
    expectProblem(image, 400, ['messages.0.content']);
    expect(image.body.errors[0].message).toMatch(/text only/);
    const noRoom = await complete({ max_tokens: 128_000 });
    expectProblem(noRoom, 400, ['max_tokens']);
    expect(noRoom.body.errors[0].message).toMatch(/must be below 128000/);
  });

  it('/v1/chat/completions names what is wrong with tools, tool calls and tool results', async () => {
    const wetter = { type: 'function', function: { name: 'wetter', parameters: { type: 'object', properties: { ort: { type: 'string' } } } } };
    const call = { id: 'call_1', type: 'function', function: { name: 'wetter', arguments: '{"ort":"Köln"}' } };
    const complete = (body: Record<string, unknown>) => http.post('/v1/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hallo' }], ...body }, jana.accessToken);
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ tool_choice: 'required' }, 'tool_choice', /only when tools are given/],
      [{ tools: [], tool_choice: { type: 'function', function: { name: 'wetter' } } }, 'tool_choice', /only when tools are given/],
      [{ tools: [wetter], tool_choice: { type: 'function', function: { name: 'zeit' } } }, 'tool_choice.function.name', /one of the tools/],
      [{ tools: [wetter], tool_choice: 'sometimes' }, 'tool_choice', /"none", "auto", "required"/],
      [{ tools: [wetter, wetter] }, 'tools', /each function once/],
      [{ tools: [{ type: 'custom', custom: { name: 'wetter' } }] }, 'tools.0.type', /function tools/],
      [{ tools: [{ type: 'function', function: { name: 'wetter dienst' } }] }, 'tools.0.function.name', /letters/],
      [{ tools: Array.from({ length: 129 }, (_, i) => ({ type: 'function', function: { name: `f${i}` } })) }, 'tools', /at most 128/],
      [{ messages: [{ role: 'user', content: 'Hallo' }, { role: 'tool', content: '12 Grad' }] }, 'messages.1.tool_call_id', /is required/],
      [{ messages: [{ role: 'user', content: 'Hallo' }, { role: 'assistant', content: null, tool_calls: [call] }, { role: 'tool', tool_call_id: 'call_2', content: '12 Grad' }] }, 'messages.2.tool_call_id', /assistant message before it/],
      // Each call answered once, right after the turn that made it.
      [{ messages: [{ role: 'user', content: 'Hallo' }, { role: 'assistant', content: null, tool_calls: [call] }, { role: 'user', content: 'Und?' }] }, 'messages.1.tool_calls', /not answered: call_1/],
      [{ messages: [{ role: 'user', content: 'Hallo' }, { role: 'assistant', content: null, tool_calls: [call] }] }, 'messages.1.tool_calls', /answered by a tool message/],
      [{ messages: [{ role: 'user', content: 'Hallo' }, { role: 'assistant', content: null, tool_calls: [call] }, { role: 'tool', tool_call_id: 'call_1', content: 'a' }, { role: 'tool', tool_call_id: 'call_1', content: 'b' }] }, 'messages.3.tool_call_id', /not yet answered/],
      [{ messages: [{ role: 'user', content: 'Hallo' }, { role: 'assistant', content: null, tool_calls: [{ ...call, id: 'anna@example.eu ruft an' }] }] }, 'messages.1.tool_calls.0.id', /tool call id/],
      [{ messages: [{ role: 'user', content: 'Hallo', tool_calls: [call] }] }, 'messages.0.tool_calls', /only allowed on an assistant/],
      [{ messages: [{ role: 'user', content: 'Hallo', tool_call_id: 'call_1' }] }, 'messages.0.tool_call_id', /only allowed on a tool message/],
      [{ messages: [{ role: 'user', content: 'Hallo' }, { role: 'assistant', content: null }] }, 'messages.1.content', /unless the message has tool_calls or a refusal/],
      [{ messages: [{ role: 'user', content: 'Hallo', refusal: 'Nein' }] }, 'messages.0.refusal', /only allowed on an assistant/],
      [{ messages: [{ role: 'user', content: null }] }, 'messages.0.content', /is required/],
      [{ messages: [{ role: 'user', content: 'Hallo' }, { role: 'assistant', content: null, tool_calls: [{ ...call, type: 'custom' }] }] }, 'messages.1.tool_calls.0.type', /"function"/],
      [{ messages: [{ role: 'function', content: 'x', name: 'wetter' }] }, 'messages.0.role', /system, developer, user, assistant or tool/],
    ];
    for (const [body, field, message] of cases) {
      const res = await complete(body);
      expectProblem(res, 400, [field]);
      expect(res.body.errors.find((e: { field: string }) => e.field === field).message).toMatch(message);
    }
    // A tool that returned nothing is a result all the same; an empty list of tools offers none.
    const history = [{ role: 'user', content: 'Wie warm ist es? wetter' }, { role: 'assistant', content: null, tool_calls: [call] }, { role: 'tool', tool_call_id: 'call_1', content: '' }];
    expect((await complete({ messages: history, tools: [wetter] })).status).toBe(200);
    expect((await complete({ tools: [], tool_choice: 'auto', parallel_tool_calls: false })).body.choices[0].message).toMatchObject({ content: 'Echo: Hallo' });
    // As clients that write every field send them: null for none; a refusal the model gave stands for its turn.
    const nulls = { type: 'function', function: { name: 'wetter', description: null, parameters: null, strict: null } };
    expect((await complete({ tools: [nulls] })).status).toBe(200);
    const refused = [{ role: 'user', content: 'Hallo' }, { role: 'assistant', content: null, refusal: 'Dazu sage ich nichts.' }, { role: 'user', content: 'Schade' }];
    expect((await complete({ messages: refused })).body.choices[0].message).toMatchObject({ content: 'Echo: Schade' });
  });

  it('consent policy versions, legal hold reasons and decision reasons with NUL are a 400', async () => {
    expectProblem(await http.post('/v1/privacy/consents', { subjectId: randomUUID(), purposes: { analytics: true }, policyVersion: '2024\u0000' }), 400, ['policyVersion']);
    const email = freshEmail();
    expect((await http.post('/v1/auth/register', { email, password: PASSWORD, firstName: 'Cora', lastName: 'Prüfer' })).status).toBe(201);
    await identityService.commands!['grant-role'](identity.app, [email, 'compliance']);
    const cora = (await http.post('/v1/auth/login', { email, password: PASSWORD })).body.accessToken;
    for (const reason of ['Rechtsstreit\u0000', 'Az. \udc00 3 O 17/26']) {
      expectProblem(await http.post('/v1/admin/privacy/legal-holds', { userId: piotr.id, reason }, cora), 400, ['reason']);
      expectProblem(await http.post(`/v1/admin/privacy/requests/${UNKNOWN}/decision`, { decision: 'lift', reason }, cora), 400, ['reason']);
    }
    expect((await http.post('/v1/admin/privacy/legal-holds', { userId: piotr.id, reason: 'Rechtsstreit\nAz. 3 O 17/26' }, cora)).status).toBe(201);
  });
});

describe('workspaces', () => {
  it('an organisation id in capitals is the same workspace as in lower case: its conversations, API keys and usage, never a second workspace with a quota of its own', async () => {
    const upper = orgId.toUpperCase();
    const created = await http.post('/v1/conversations', { workspace: upper, title: 'Großbuchstaben' }, jana.accessToken);
    expect(created.status).toBe(201);
    expect(created.body.workspace).toBe(orgId);
    const listed = await http.get(`/v1/conversations?workspace=${orgId}`, jana.accessToken);
    expect(listed.body.data.map((c: { id: string }) => c.id)).toContain(created.body.id);
    expect((await http.get(`/v1/conversations?workspace=${upper}`, jana.accessToken)).body.data.map((c: { id: string }) => c.id)).toContain(created.body.id);
    const key = await http.post('/v1/me/api-keys', { name: 'Großschreibung', workspace: upper }, jana.accessToken);
    expect(key.status).toBe(201);
    expect(key.body.workspace).toBe(orgId);
  });
});

describe('query parameters', () => {
  it('an unknown or missing query parameter of a chat list is a 400 naming it, not "(body)"', async () => {
    const unknown = await http.get('/v1/conversations?workspace=private&foo=bar', jana.accessToken);
    expectProblem(unknown, 400, ['foo']);
    expect(unknown.body.errors).toEqual([{ field: 'foo', message: 'is not a known query parameter' }]);
    const missing = await http.get('/v1/conversations', jana.accessToken);
    expectProblem(missing, 400, ['workspace']);
    expect(missing.body.errors).toEqual([{ field: 'workspace', message: 'is required' }]);
  });
});

describe('cursors', () => {
  const cursorAt = (at: string) => Buffer.from(`${at}|${UNKNOWN}`).toString('base64url');
  const pagedLists = () => ['/v1/conversations?workspace=private&limit=1', '/v1/privacy/requests?limit=1', '/v1/me/api-keys?limit=1', `/v1/orgs/${orgId}/members?limit=1`];

  it('a time that Date.parse takes but Postgres refuses or reads otherwise is a 400 naming cursor, on every paged list', async () => {
    for (const at of ['2024-02-31T00:00:00.000Z', '0000-01-01T00:00:00.000Z', '2024-01-01T24:00:00.000Z']) {
      for (const list of pagedLists()) expectProblem(await http.get(`${list}&cursor=${cursorAt(at)}`, jana.accessToken), 400, ['cursor']);
    }
  });

  it('every paged list refuses a bad limit, a cursor it did not give out and an unknown parameter, naming it', async () => {
    for (const list of pagedLists()) {
      for (const limit of ['-1', 'abc', '0', '101', '1.5', '']) expectProblem(await http.get(`${list.replace('limit=1', `limit=${limit}`)}`, jana.accessToken), 400, ['limit']);
      for (const cursor of ['junk', 'x'.repeat(201)]) expectProblem(await http.get(`${list}&cursor=${cursor}`, jana.accessToken), 400, ['cursor']);
    }
    for (const list of ['/v1/me/api-keys?limit=1', `/v1/orgs/${orgId}/members?limit=1`, '/v1/privacy/requests?limit=1']) {
      const res = await http.get(`${list}&foo=bar`, jana.accessToken);
      expectProblem(res, 400, ['foo']);
      expect(res.body.errors).toEqual([{ field: 'foo', message: 'is not a known query parameter' }]);
    }
  });

  it('API keys and members page by limit and cursor, 20 at most unless asked', async () => {
    const keys = [];
    for (const name of ['Erster', 'Zweiter', 'Dritter']) keys.push((await http.post('/v1/me/api-keys', { name, workspace: 'private' }, piotr.accessToken)).body.id);
    const first = await http.get('/v1/me/api-keys?limit=1', piotr.accessToken);
    expect(first.status).toBe(200);
    expect(first.body).toEqual({ data: [expect.objectContaining({ id: keys[2], name: 'Dritter' })], nextCursor: expect.any(String) });
    const rest = await http.get(`/v1/me/api-keys?limit=5&cursor=${first.body.nextCursor}`, piotr.accessToken);
    expect(rest.body.data.map((k: { name: string }) => k.name)).toEqual(['Zweiter', 'Erster']);
    expect(rest.body.nextCursor).toBeNull();

    const org = (await http.post('/v1/orgs', { name: 'Kowalski Sp. z o.o.' }, piotr.accessToken)).body.id;
    const members = await http.get(`/v1/orgs/${org}/members?limit=1`, piotr.accessToken);
    expect(members.body).toEqual({ data: [expect.objectContaining({ userId: piotr.id, role: 'owner' })], nextCursor: null });
    expectProblem(await http.get(`/v1/orgs/${org}/members?limit=1`, jana.accessToken), 404);
  });

  it('a cursor the API gave out still pages', async () => {
    for (const title of ['Angebot', 'Rechnung']) expect((await http.post('/v1/conversations', { workspace: 'private', title }, piotr.accessToken)).status).toBe(201);
    const first = await http.get('/v1/conversations?workspace=private&limit=1', piotr.accessToken);
    expect(first.body.nextCursor).toEqual(expect.any(String));
    const second = await http.get(`/v1/conversations?workspace=private&limit=1&cursor=${first.body.nextCursor}`, piotr.accessToken);
    expect(second.status).toBe(200);
    expect(second.body.data.map((c: { title: string }) => c.title)).toEqual(['Angebot']);
  });
});

describe('enums, booleans, numbers and lists', () => {
  it('locale must be de or en', async () => {
    for (const locale of ['fr', 'EN', '', 1]) {
      expectProblem(await http.patch('/v1/me', { locale }, piotr.accessToken), 400, ['locale']);
      expectProblem(await http.post('/v1/auth/register', { email: freshEmail(), password: PASSWORD, firstName: 'Jana', lastName: 'Novák', locale }), 400, ['locale']);
    }
  });

  it('an invitation role is admin or member, never owner', async () => {
    for (const role of ['owner', 'root', '', 'ADMIN']) {
      expectProblem(await http.post(`/v1/orgs/${orgId}/invitations`, { email: freshEmail(), role }, jana.accessToken), 400, ['role']);
    }
  });

  it('an API key workspace is "private" or an organisation id, and an unknown organisation is a 404', async () => {
    for (const workspace of ['public', 'nope', '', 42, null]) {
      const res = await http.post('/v1/me/api-keys', { name: 'CLI', workspace }, jana.accessToken);
      expectProblem(res, 400, ['workspace']);
      expect(res.body.errors.find((e: { field: string }) => e.field === 'workspace').message).toMatch(/private.*organisation id/);
    }
    expectProblem(await http.post('/v1/me/api-keys', { name: 'CLI', workspace: UNKNOWN }, jana.accessToken), 404);
  });

  it('the policy checks its numbers and lists', async () => {
    const path = `/v1/orgs/${orgId}/policy`;
    for (const chatRetentionDays of [0, -1, 1.5, 3651, 1e308, '30']) expectProblem(await http.patch(path, { chatRetentionDays }, jana.accessToken), 400, ['chatRetentionDays']);
    for (const number of ['1e400', '-1e400', '3e-400']) {
      const res = await http.request('PATCH', path, { raw: `{"chatRetentionDays":${number}}`, headers: { 'content-type': 'application/json' }, token: jana.accessToken });
      expectProblem(res, 400, ['chatRetentionDays']);
    }
    for (const allowedModels of ['mistral', [1], [''], Array.from({ length: 101 }, (_, i) => `m${i}`)]) {
      const res = await http.patch(path, { allowedModels }, jana.accessToken);
      expectProblem(res, 400);
      expect(res.body.errors[0].field).toMatch(/^allowedModels/);
    }
    expectProblem(await http.patch(path, { euOnly: 'yes' }, jana.accessToken), 400, ['euOnly']);
    expectProblem(await http.patch(path, { euOnly: undefined }, jana.accessToken), 400, ['(body)']);
  });
});

describe('path ids', () => {
  const idRoutes: [string, (id: string) => string, string, () => unknown][] = [
    ['DELETE', (id) => `/v1/me/api-keys/${id}`, 'id', () => undefined],
    ['GET', (id) => `/v1/orgs/${id}`, 'orgId', () => undefined],
    ['GET', (id) => `/v1/orgs/${id}/members`, 'orgId', () => undefined],
    ['POST', (id) => `/v1/orgs/${id}/invitations`, 'orgId', () => ({ email: freshEmail(), role: 'member' })],
    ['PATCH', (id) => `/v1/orgs/${id}/policy`, 'orgId', () => ({ euOnly: true })],
    ['DELETE', (id) => `/v1/orgs/${id}/members/${UNKNOWN}`, 'orgId', () => undefined],
    ['DELETE', (id) => `/v1/orgs/${orgId}/members/${id}`, 'userId', () => undefined],
  ];
  const notUuids = ['1', 'abc', 'not-a-uuid', '0b7c7b7e-7a53-4c1e-9d43-3f1f0d7f9c1', '0b7c7b7e-7a53-4c1e-9d43-3f1f0d7f9c11x', 'zb7c7b7e-7a53-4c1e-9d43-3f1f0d7f9c11', encodeURIComponent("' OR '1'='1"), '%00', 'null', 'undefined', '🙂'];

  it.each(idRoutes)('%s %s answers 400 naming the parameter for ids that are not UUIDs', async (method, path, param, body) => {
    for (const id of notUuids) {
      const res = await http.request(method, path(id), { body: body(), token: jana.accessToken });
      expectProblem(res, 400, [param]);
    }
  });

  it.each(idRoutes)('%s %s answers 404 for well-formed unknown ids', async (method, path, _param, body) => {
    const res = await http.request(method, path(UNKNOWN), { body: body(), token: jana.accessToken });
    expectProblem(res, 404);
    expect(res.body.detail).toMatch(/not found/i);
  });

  it('an organisation of someone else is a 404, on every organisation route', async () => {
    for (const [method, path, param, body] of idRoutes) {
      if (param !== 'orgId') continue;
      expectProblem(await http.request(method, path(orgId), { body: body(), token: piotr.accessToken }), 404);
    }
  });

  it('someone else’s API key is a 404, and revoking twice is a 404', async () => {
    const key = await http.post('/v1/me/api-keys', { name: 'CLI', workspace: 'private' }, jana.accessToken);
    expect(key.status).toBe(201);
    expectProblem(await http.delete(`/v1/me/api-keys/${key.body.id}`, piotr.accessToken), 404);
    expect((await http.delete(`/v1/me/api-keys/${key.body.id}`, jana.accessToken)).status).toBe(204);
    expectProblem(await http.delete(`/v1/me/api-keys/${key.body.id}`, jana.accessToken), 404);
  });
});

describe('tokens in bodies', () => {
  it('unknown, short and malformed one-time tokens are a 400 naming token', async () => {
    for (const token of [TOKEN, 'short', 'ü'.repeat(20), 'x'.repeat(513)]) {
      expectProblem(await http.post('/v1/auth/verify-email', { token }), 400, ['token']);
      expectProblem(await http.post('/v1/auth/password/reset', { token, password: PASSWORD }), 400, ['token']);
      expectProblem(await http.post('/v1/invitations/accept', { token }, piotr.accessToken), 400, ['token']);
    }
  });

  it('an unknown refresh token is a 401 on refresh, a no-op on logout; a short one is a 400', async () => {
    for (const refreshToken of [TOKEN, `rt_${TOKEN}`]) {
      expectProblem(await http.post('/v1/auth/refresh', { refreshToken }), 401);
      expect((await http.post('/v1/auth/logout', { refreshToken })).status).toBe(204);
    }
    expectProblem(await http.post('/v1/auth/refresh', { refreshToken: 'rt_1' }), 400, ['refreshToken']);
    expectProblem(await http.post('/v1/auth/logout', { refreshToken: 'rt_1' }), 400, ['refreshToken']);
  });
});

describe('registration conflicts', () => {
  it('an email that is already registered is a 409 naming email, in any letter case', async () => {
    for (const email of ['jana@example.eu', 'JANA@Example.EU', '  jana@example.eu ']) {
      const res = await http.post('/v1/auth/register', { email, password: PASSWORD, firstName: 'Jana', lastName: 'Dvořák' });
      expectProblem(res, 409, ['email']);
      expect(res.body.detail).toMatch(/already exists/);
    }
  });

  it('two registrations of the same email at once: one 201, one 409', async () => {
    const email = freshEmail();
    const body = { email, password: PASSWORD, firstName: 'Jana', lastName: 'Novák' };
    const results = await Promise.all([http.post('/v1/auth/register', body), http.post('/v1/auth/register', body), http.post('/v1/auth/register', body)]);
    expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409]);
    for (const r of results.filter((x) => x.status === 409)) expectProblem(r, 409, ['email']);
  });
});

describe('single sign-on', () => {
  it('an unknown provider is a 404, a malformed one a 400, and a callback without state a 400', async () => {
    expectProblem(await http.get('/v1/auth/sso/nosuchprovider/start'), 404);
    for (const provider of ['BAD', 'a_b', 'x'.repeat(41), '%F0%9F%99%82']) {
      const res = await http.get(`/v1/auth/sso/${provider}/start`);
      expectProblem(res, 400, ['provider']);
    }
    expectProblem(await http.get('/v1/auth/sso/nosuchprovider/callback?code=abc'), 404);
  });
});

describe('JWKS and reads', () => {
  it('GET routes without parameters ignore a body and stray query parameters', async () => {
    const me = await http.request('GET', '/v1/me?include=password_hash&limit=-1', { token: jana.accessToken });
    expect(me.status).toBe(200);
    expect(me.body.passwordHash).toBeUndefined();
  });

  it('a list refuses mangled query parameters with a 400 naming one of them, never a 5xx', async () => {
    const cases: [string, string][] = [
      ['limit=abc&cursor=%00', 'limit'],
      ['cursor=%00', 'cursor'],
      ['cursor=%E0%A4%A&limit=%', 'limit'],
      ['a[b]=1&a[c]=2', ''],
      [`x=${'y'.repeat(5000)}`, 'x'],
    ];
    for (const [query, field] of cases) {
      const keys = await http.request('GET', `/v1/me/api-keys?${query}`, { token: jana.accessToken });
      expectProblem(keys, 400, field ? [field] : []);
    }
  });
});

describe('query parameters of a list', () => {
  it('GET /v1/billing/invoices names a bad limit, and a parameter it does not know, not as "(body)"', async () => {
    for (const query of ['limit=0', 'limit=101', 'limit=five', 'foo=bar']) {
      const res = await http.get(`/v1/billing/invoices?workspace=private&${query}`, jana.accessToken);
      const field = query.split('=')[0];
      expectProblem(res, 400, [field]);
      if (field === 'foo') expect(res.body.errors).toEqual([{ field, message: 'is not a known query parameter' }]);
    }
  });
});

describe('retention policies', () => {
  let cora: string;
  const put = (body: unknown) => http.request('PUT', '/v1/admin/privacy/retention-policies', { body, token: cora });
  const policy = { service: 'identity', category: 'login-audit', retentionDays: 30 };

  beforeAll(async () => {
    const email = freshEmail();
    expect((await http.post('/v1/auth/register', { email, password: PASSWORD, firstName: 'Cora', lastName: 'Prüfer' })).status).toBe(201);
    await identityService.commands!['grant-role'](identity.app, [email, 'compliance']);
    cora = (await http.post('/v1/auth/login', { email, password: PASSWORD })).body.accessToken;
  });

  it('names the bad field of one policy, and of a policy in a list by its index', async () => {
    const bad: [Record<string, unknown>, string][] = [
      [{ retentionDays: 'x' }, 'retentionDays'],
      [{ retentionDays: 0 }, 'retentionDays'],
      [{ retentionDays: 1.5 }, 'retentionDays'],
      [{ basis: 'because' }, 'basis'],
      [{ service: 'mail' }, 'service'],
      [{ category: 'no-such-thing' }, 'category'],
    ];
    for (const [change, field] of bad) {
      expectProblem(await put({ ...policy, ...change }), 400, [field]);
      expectProblem(await put([policy, { ...policy, ...change }]), 400, [`1.${field}`]);
    }
    const extra = await put({ ...policy, legalHold: false });
    expectProblem(extra, 400, ['legalHold']);
    expect(extra.body.errors).toEqual([{ field: 'legalHold', message: 'is not a known field' }]);
    expectProblem(await put([{ ...policy, legalHold: false }]), 400, ['0.legalHold']);
    const missing = await put({ service: 'identity', category: 'login-audit' });
    expectProblem(missing, 400, ['retentionDays']);
    expect(missing.body.errors).toEqual([{ field: 'retentionDays', message: 'is required' }]);
    for (const body of [[], 'hello', 42]) expectProblem(await put(body), 400, ['(body)']);
  });

  it('refuses a day count for a category kept while the account exists, and takes one where the rule is a period', async () => {
    const account = await put({ category: 'account', service: 'identity', retentionDays: 1 });
    expectProblem(account, 400, ['retentionDays']);
    expect(account.body.errors[0].message).toMatch(/must be null.*while the account exists/);
    expectProblem(await put([policy, { category: 'memberships', service: 'identity', retentionDays: 400 }]), 400, ['1.retentionDays']);
    const ok = await put([policy, { category: 'account', service: 'identity', retentionDays: null }]);
    expect(ok.status).toBe(200);
    expect(ok.body.data).toContainEqual(expect.objectContaining({ category: 'account', retentionDays: null }));
  });

  it('shortens any period but one the law sets, and keeps the legal basis declared with the category', async () => {
    // Periods that are maximums (a consent's two years, a package's seven days) may be shorter: that is data minimisation.
    const shorter = await put([
      { service: 'privacy', category: 'export-packages', retentionDays: 3 },
      { service: 'privacy', category: 'consent-records', retentionDays: 365 },
    ]);
    expect(shorter.status).toBe(200);
    expect(shorter.body.data).toEqual(expect.arrayContaining([expect.objectContaining({ category: 'export-packages', retentionDays: 3 }), expect.objectContaining({ category: 'consent-records', retentionDays: 365 })]));
    // Longer, or for ever, would break the policy's promise (the login audit: at most 30 days).
    for (const retentionDays of [31, 3650, null]) {
      const longer = await put({ service: 'identity', category: 'login-audit', retentionDays });
      expectProblem(longer, 400, ['retentionDays']);
      expect(longer.body.errors[0].message).toMatch(/^must be at most 30: the privacy policy keeps login-audit no longer/);
    }
    // Invoices: the policy's 10 years by default, 8 by law (§ 147(3) AO since 2025), no shorter.
    const invoices = await put({ service: 'billing', category: 'invoices', retentionDays: 365 });
    expectProblem(invoices, 422);
    expect(invoices.body.detail).toMatch(/invoices must by law be kept at least 2922 days/);
    expect((await put({ service: 'billing', category: 'invoices', retentionDays: 2922 })).status).toBe(200);
    // Kept as long as the law says, not longer (nor for ever): the privacy policy promises that too.
    for (const retentionDays of [4000, null]) {
      const longer = await put({ service: 'billing', category: 'invoices', retentionDays });
      expectProblem(longer, 400, ['retentionDays']);
    }
    // The basis is not a setting: the register and the objection plan follow the declaration.
    const relabelled = await put({ service: 'billing', category: 'invoices', retentionDays: 3653, basis: 'consent (Art. 6(1)(a) GDPR)' });
    expectProblem(relabelled, 400, ['basis']);
    expect(relabelled.body.errors[0].message).toMatch(/legal obligation .* declared with the category/);
    expect((await put({ service: 'billing', category: 'invoices', retentionDays: 3653, basis: 'legal obligation (Art. 6(1)(c) GDPR)' })).status).toBe(200);
    // Paged as every list is; a query parameter it does not know is named, not ignored.
    expectProblem(await http.get('/v1/admin/privacy/retention-policies?size=1', cora), 400, ['size']);
    const listed = await http.get('/v1/admin/privacy/retention-policies?limit=100', cora);
    expect(listed.body.data.find((p: { category: string }) => p.category === 'invoices')).toMatchObject({ retentionDays: 3653, basis: 'legal obligation (Art. 6(1)(c) GDPR)' });
    const pages = [];
    for (let cursor: string | null = '', n = 0; cursor !== null && n < 100; n++) {
      const page: { data: unknown[]; nextCursor: string | null } = (await http.get(`/v1/admin/privacy/retention-policies?limit=3${cursor ? `&cursor=${cursor}` : ''}`, cora)).body;
      pages.push(...page.data);
      cursor = page.nextCursor;
    }
    expect(pages).toEqual(listed.body.data);
  });
});

describe('organisation policy', () => {
  it('null clears allowed models and the chat retention, once set', async () => {
    const path = `/v1/orgs/${orgId}/policy`;
    expect((await http.patch(path, { allowedModels: ['mistral-small'], chatRetentionDays: 30 }, jana.accessToken)).body).toMatchObject({ allowedModels: ['mistral-small'], chatRetentionDays: 30 });
    const cleared = await http.patch(path, { allowedModels: null, chatRetentionDays: null }, jana.accessToken);
    expect(cleared.status).toBe(200);
    expect(cleared.body).toMatchObject({ allowedModels: null, chatRetentionDays: null });
    expect((await http.get(`/v1/orgs/${orgId}`, jana.accessToken)).body.policy).toMatchObject({ allowedModels: null, chatRetentionDays: null });
    for (const field of ['euOnly', 'blockedTerms']) expectProblem(await http.patch(path, { [field]: null }, jana.accessToken), 400, [field]);
  });
});
