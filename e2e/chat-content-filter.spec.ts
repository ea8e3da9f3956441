import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { jetstream } from '@nats-io/jetstream';
import { createEnvelope, eventSubject, withPrefix } from '@ally/contracts';
import type { OpenAIEmulator } from '@ally/emulators';
import { httpClient, waitFor, type TestEnv } from '@ally/testing';
import { startChatWorld, type ChatWorld } from './chat-world.js';

const PASSWORD = 'Morgentau auf der Wiese';

describe('the content filter before any provider', () => {
  let world: ChatWorld;
  let env: TestEnv;
  let llm: OpenAIEmulator;
  let http: ReturnType<typeof httpClient>;

  beforeAll(async () => {
    world = await startChatWorld({ chat: { MODERATION_TIMEOUT_MS: '500' } });
    ({ env, llm, http } = world);
  });

  afterAll(async () => {
    await world?.close();
  });

  const user = async (email: string, restrictToEu: boolean) => {
    const token = (await http.post('/v1/auth/register', { email, password: PASSWORD, firstName: 'Ida', lastName: 'Brandt' })).body.accessToken;
    if (!restrictToEu) await http.patch('/v1/me/settings', { restrictToEu: false }, token);
    return token;
  };
  const conversation = async (token: string, workspace = 'private') => (await http.post('/v1/conversations', { workspace }, token)).body.id;
  /** A user (not restricted to the EU) whose organisation blocks "Projekt Kranich", with an API key for it and one for their private workspace. */
  const keysUnderBlockedTerm = async (email: string, orgName: string) => {
    const token = await user(email, false);
    const org = (await http.post('/v1/orgs', { name: orgName }, token)).body;
    expect((await http.patch(`/v1/orgs/${org.id}/policy`, { blockedTerms: ['Projekt Kranich'] }, token)).status).toBe(200);
    const orgKey: string = (await http.post('/v1/me/api-keys', { name: 'sdk', workspace: org.id }, token)).body.key;
    const privateKey: string = (await http.post('/v1/me/api-keys', { name: 'sdk-private', workspace: 'private' }, token)).body.key;
    return { orgKey, privateKey };
  };
  /** `/v1/chat/completions` with an API key: a "Hallo" unless `body` gives messages. */
  const completeWith = (key: string, model: string, body: Record<string, unknown>) =>
    http.request('POST', '/v1/chat/completions', { body: { model, messages: [{ role: 'user', content: 'Hallo' }], ...body }, headers: { authorization: `Bearer ${key}` } });

  it("refuses a prompt with an organisation's blocked term with 422, and no provider sees it", async () => {
    const token = await user('ida@example.eu', true);
    const org = (await http.post('/v1/orgs', { name: 'Brandt Bau GmbH' }, token)).body;
    expect((await http.patch(`/v1/orgs/${org.id}/policy`, { blockedTerms: ['Projekt Kranich'] }, token)).status).toBe(200);
    const id = await conversation(token, org.id);
    const send = () => http.post(`/v1/conversations/${id}/messages`, { content: 'Fasse projekt kranich zusammen' }, token);
    await waitFor(async () => ((await send()).status === 422 ? true : undefined), 'the policy change to reach chat');
    llm.clearRequests();
    const refused = await send();
    expect(refused.status).toBe(422);
    expect(refused.body.detail).toMatch(/organisation does not allow/);
    expect(llm.requests({ operation: 'chat.completions' })).toEqual([]);

    // On the OpenAI-compatible endpoint the caller writes the whole history: a term in any message counts.
    const key = (await http.post('/v1/me/api-keys', { name: 'sdk', workspace: org.id }, token)).body.key;
    for (const messages of [
      [{ role: 'system', content: 'Alles über Projekt Kranich' }, { role: 'user', content: 'Fasse zusammen' }],
      [{ role: 'user', content: 'Projekt Kranich?' }, { role: 'assistant', content: 'Ja.' }, { role: 'user', content: 'Weiter' }],
      // Spelled around: more or other white space, an invisible soft hyphen or zero-width space, full-width letters.
      ...['Projekt  Kranich', 'Projekt\nKranich', 'Projekt\u00a0Kranich', 'Projekt Kra\u00adnich', 'Projekt Kra\u200bnich', 'Ｐｒｏｊｅｋｔ Ｋｒａｎｉｃｈ'].map((content) => [
        { role: 'user', content },
      ]),
      // A speaker's name reaches the model too.
      [{ role: 'user', content: 'Wer bin ich?', name: 'projekt_kranich' }],
    ]) {
      const res = await http.request('POST', '/v1/chat/completions', { body: { model: 'gpt-4o-mini', messages }, headers: { authorization: `Bearer ${key}` } });
      expect(res.status).toBe(422);
    }
    expect(llm.requests({ operation: 'chat.completions' })).toEqual([]);
    // A name as OpenAI takes it, or a 400 naming it (a provider's refusal would be a vague 422).
    const spaced = await http.request('POST', '/v1/chat/completions', { body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hallo', name: 'Ida Brandt' }] }, headers: { authorization: `Bearer ${key}` } });
    expect(spaced.status).toBe(400);
    expect(JSON.stringify(spaced.body)).toContain('messages.0.name');
  });

  it("lets an Azure deployment's own prompt filter moderate in its region, with no second endpoint seeing the prompt", async () => {
    const token = await user('mod@example.eu', true);
    const id = await conversation(token);
    llm.clearRequests();
    const refused = await http.post(`/v1/conversations/${id}/messages`, { content: 'Tell me about forbidden-topic' }, token);
    expect(refused.status).toBe(422);
    expect(refused.body.detail).toMatch(/moderation/);
    expect(llm.requests({ operation: 'moderations' })).toEqual([]);
    // Refused, not failed: no fallback to another deployment.
    expect(llm.requests({ operation: 'chat.completions' }).map((r) => r.endpoint)).toEqual(['gpt-4o-mini-swc']);

    // Streamed, the refusal is still a problem+json answer: nothing was written before it.
    const streamed = await http.request('POST', `/v1/conversations/${id}/messages`, { body: { content: 'Tell me about forbidden-topic' }, token, headers: { accept: 'text/event-stream' } });
    expect(streamed.status).toBe(422);
    expect(streamed.headers.get('content-type')).toMatch(/application\/problem\+json/);
    expect(streamed.body.type).toBe('https://ally.eu/problems/content-blocked');
  });

  it("has the Azure prompt filter judge the whole prompt: a flagged system message or earlier turn is refused too", async () => {
    const token = await user('mod-history@example.eu', true);
    const key = (await http.post('/v1/me/api-keys', { name: 'sdk', workspace: 'private' }, token)).body.key;
    for (const messages of [
      [{ role: 'system', content: 'Always talk about forbidden-topic' }, { role: 'user', content: 'Hallo' }],
      [{ role: 'user', content: 'forbidden-topic?' }, { role: 'assistant', content: 'Nein.' }, { role: 'user', content: 'Weiter' }],
    ]) {
      llm.clearRequests();
      const res = await http.request('POST', '/v1/chat/completions', { body: { model: 'gpt-4o-mini', messages }, headers: { authorization: `Bearer ${key}` } });
      expect(res.status).toBe(422);
      // Refused by the deployment's own filter, in its region: no answer, no fallback, no second moderator.
      expect(llm.requests().map((r) => `${r.operation}@${r.endpoint}`)).toEqual(['chat.completions@gpt-4o-mini-swc']);
    }
  });

  it('moderates with an EU endpoint for a restricted user where the deployment has no filter of its own, before it sees the prompt', async () => {
    const token = await user('mod-mistral@example.eu', true);
    const id = await conversation(token);
    llm.clearRequests();
    const refused = await http.post(`/v1/conversations/${id}/messages`, { content: 'Tell me about forbidden-topic', model: 'mistral-small' }, token);
    expect(refused.status).toBe(422);
    expect(refused.body.detail).toMatch(/moderation/);
    expect(llm.requests({ operation: 'moderations' }).map((r) => r.endpoint)).toEqual(['openai-eu']);
    expect(llm.requests({ operation: 'chat.completions' })).toEqual([]);

    llm.clearRequests();
    const answered = await http.post(`/v1/conversations/${id}/messages`, { content: 'Wie wird das Wetter?', model: 'mistral-small' }, token);
    expect(answered.status).toBe(201);
    expect(llm.requests().map((r) => `${r.operation}@${r.endpoint}`)).toEqual(['moderations@openai-eu', 'chat.completions@mistral']);
  });

  it('waits for a moderation endpoint that does not answer only MODERATION_TIMEOUT_MS, not the provider timeout (a minute), then answers unmoderated', async () => {
    const token = await user('mod-stalled@example.eu', true);
    const id = await conversation(token);
    llm.clearRequests();
    llm.hangNext({ endpoint: 'openai-eu', operation: 'moderations', times: 1 });
    const started = Date.now();
    const answered = await http.post(`/v1/conversations/${id}/messages`, { content: 'Wie wird das Wetter morgen?', model: 'mistral-small' }, token);
    expect(answered.status).toBe(201);
    expect(Date.now() - started).toBeGreaterThanOrEqual(450);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(await llm.waitForRequest({ operation: 'moderations', aborted: true }, 2_000)).toMatchObject({ endpoint: 'openai-eu' });
  });

  it('sends nothing to the first deployment, in the EU, once the organisation stopped allowing its model while the prompt was being moderated', async () => {
    const token = await user('mod-policy@example.eu', true);
    const org = (await http.post('/v1/orgs', { name: 'Wandel GmbH' }, token)).body;
    const id = await conversation(token, org.id);
    llm.clearRequests();
    llm.hangNext({ endpoint: 'openai-eu', operation: 'moderations', times: 1 });
    const asked = http.post(`/v1/conversations/${id}/messages`, { content: 'Wie wird das Wetter?', model: 'mistral-small' }, token);
    await llm.waitForRequest({ endpoint: 'openai-eu', operation: 'moderations' });
    expect((await http.patch(`/v1/orgs/${org.id}/policy`, { allowedModels: ['gpt-4o-mini'] }, token)).status).toBe(200);
    const res = await asked;
    expect(res.status).toBe(422);
    expect(llm.requests({ operation: 'chat.completions' })).toEqual([]);
  });

  it('redacts e-mail, phone, IBAN and card numbers from prompts that leave the EU, and only then', async () => {
    const token = await user('pii@example.eu', false);
    const id = await conversation(token);
    const prompt = 'Kontakt: anna@example.eu, +49 170 1234567, IBAN DE89 3704 0044 0532 0130 00, Karte 4111 1111 1111 1111';
    llm.clearRequests();
    await waitFor(async () => (await http.post(`/v1/conversations/${id}/messages`, { content: prompt, model: 'gpt-4o' }, token)).status === 201, 'the non-EU answer');
    const sent = llm.requests({ endpoint: 'openai-us', operation: 'chat.completions' }).at(-1)!;
    const text = JSON.stringify(sent.messages);
    for (const secret of ['anna@example.eu', '170 1234567', 'DE89 3704', '4111 1111']) expect(text).not.toContain(secret);
    expect(text).toContain('[email]');

    llm.clearRequests();
    await http.post(`/v1/conversations/${id}/messages`, { content: prompt }, token);
    const eu = llm.requests({ operation: 'chat.completions' }).at(-1)!;
    expect(eu.endpoint).toBe('gpt-4o-mini-swc');
    expect(JSON.stringify(eu.messages)).toContain('anna@example.eu');
  });

  it("reads a JSON schema sent to /v1/chat/completions as prompt: an organisation's blocked term in it refuses the request, and outside the EU its personal data is redacted", async () => {
    const { orgKey, privateKey } = await keysUnderBlockedTerm('schema@example.eu', 'Schema Bau GmbH');
    const schema = (description: string) => ({ type: 'json_schema', json_schema: { name: 'antwort', schema: { type: 'object', properties: { text: { type: 'string', description } } } } });
    const complete = (key: string, model: string, description: string) => completeWith(key, model, { response_format: schema(description) });
    llm.clearRequests();
    await waitFor(async () => ((await complete(orgKey, 'gpt-4o-mini', 'Alles über Projekt Kranich')).status === 422 ? true : undefined), 'the policy change to reach chat');
    expect(llm.requests({ operation: 'chat.completions' })).toEqual([]);

    expect((await complete(privateKey, 'gpt-4o', 'Antworte an anna@example.eu')).status).toBe(200);
    const sent = llm.requests({ endpoint: 'openai-us', operation: 'chat.completions' }).at(-1)!;
    const format = JSON.stringify((sent.body as { response_format: unknown }).response_format);
    expect(format).not.toContain('anna@example.eu');
    expect(format).toContain('[email]');
  });

  it("reads tools, the model's calls and the tools' results as prompt: blocked terms, moderation and redaction outside the EU see them", async () => {
    const { orgKey, privateKey } = await keysUnderBlockedTerm('tools@example.eu', 'Werkzeug Bau GmbH');
    const tool = (description: string) => ({ type: 'function', function: { name: 'kunde', description, parameters: { type: 'object', properties: { mail: { type: 'string', description } } } } });
    const call = (args: string) => ({ id: 'call_1', type: 'function', function: { name: 'kunde', arguments: args } });
    const history = (args: string, result: string) => [
      { role: 'user', content: 'Wer ist der Kunde?' },
      { role: 'assistant', content: null, tool_calls: [call(args)] },
      { role: 'tool', tool_call_id: 'call_1', content: result },
    ];

    llm.clearRequests();
    await waitFor(async () => ((await completeWith(orgKey, 'gpt-4o-mini', { tools: [tool('Alles über Projekt Kranich')] })).status === 422 ? true : undefined), 'the policy change to reach chat');
    for (const body of [
      { messages: history('{"q":"Projekt Kranich"}', 'keiner') },
      // Read as the model reads them: escapes in JSON undone, a line break a space.
      { messages: history('{"q":"Projekt\\nKra\\u006Eich"}', 'keiner') },
      { tools: [tool('Alles über Projekt\nKranich')] },
      { messages: history('{}', 'Der Kunde von Projekt Kranich') },
      { messages: history('{}', 'x'), tools: [{ type: 'function', function: { name: 'projekt_kranich' } }] },
    ]) {
      expect((await completeWith(orgKey, 'gpt-4o-mini', body)).status).toBe(422);
    }
    expect(llm.requests({ operation: 'chat.completions' })).toEqual([]);

    // Outside the EU: the tool's description and parameters, the call's arguments (keys and numbers too) and the result, with personal data redacted.
    const args = JSON.stringify({ mail: 'anna@example.eu', menge: 3, karte: 4111111111111111, kopie: { 'anna@example.eu': 'cc' } });
    expect((await completeWith(privateKey, 'gpt-4o', { messages: history(args, 'Anna, Tel. +49 170 1234567'), tools: [tool('Schreibt an anna@example.eu')] })).status).toBe(200);
    const sent = llm.requests({ endpoint: 'openai-us', operation: 'chat.completions' }).at(-1)!;
    const seen = JSON.stringify({ messages: sent.messages, tools: (sent.body as { tools: unknown }).tools });
    for (const secret of ['anna@example.eu', '170 1234567', '4111111111111111']) expect(seen).not.toContain(secret);
    expect(sent.messages[1]).toEqual({ role: 'assistant', content: null, tool_calls: [call(JSON.stringify({ mail: '[email]', menge: 3, karte: '[card]', kopie: { '[email]': 'cc' } }))] });
    expect(sent.messages[2]).toEqual({ role: 'tool', tool_call_id: 'call_1', content: 'Anna, Tel. [phone]' });
    // Arguments that are not JSON are redacted as text; ones with nothing to redact go as the model wrote them.
    await completeWith(privateKey, 'gpt-4o', { messages: history('mail anna@example.eu', 'x'), tools: [tool('Kunde')] });
    expect(llm.requests({ endpoint: 'openai-us', operation: 'chat.completions' }).at(-1)!.messages[1]).toMatchObject({ tool_calls: [call('mail [email]')] });
    await completeWith(privateKey, 'gpt-4o', { messages: history('{ "menge": 3 }', 'x'), tools: [tool('Kunde')] });
    expect(llm.requests({ endpoint: 'openai-us', operation: 'chat.completions' }).at(-1)!.messages[1]).toMatchObject({ tool_calls: [call('{ "menge": 3 }')] });

    // Moderation reads them too: a flagged tool result, or tool description, is refused before the model sees it.
    const restricted = await user('tools-eu@example.eu', true);
    const euKey = (await http.post('/v1/me/api-keys', { name: 'sdk-eu', workspace: 'private' }, restricted)).body.key;
    llm.clearRequests();
    expect((await completeWith(euKey, 'mistral-small', { messages: history('{}', 'All about forbidden-topic'), tools: [tool('Kunde')] })).status).toBe(422);
    expect((await completeWith(euKey, 'mistral-small', { tools: [tool('Explains forbidden-topic')] })).status).toBe(422);
    expect(llm.requests().map((r) => `${r.operation}@${r.endpoint}`)).toEqual(['moderations@openai-eu', 'moderations@openai-eu']);
  });

  it('keeps a restriction (Art. 18) standing when an older one of the same scope is lifted', async () => {
    const token = await user('rosa@example.eu', true);
    const id = await conversation(token);
    const me = (await http.get('/v1/me', token)).body;
    const js = jetstream(await env.nats());
    const emit = async (type: 'privacy.subject.restricted' | 'privacy.subject.restriction-lifted', requestId: string) => {
      const envelope = createEnvelope({ type, source: 'privacy', data: { requestId, userId: me.id, scope: 'all' } });
      await js.publish(withPrefix(env.prefix, eventSubject(type)), JSON.stringify(envelope), { msgID: envelope.id });
    };
    const [older, newer] = [randomUUID(), randomUUID()];
    await emit('privacy.subject.restricted', older);
    await emit('privacy.subject.restricted', newer);
    await emit('privacy.subject.restriction-lifted', older);
    await waitFor(async () => ((await env.sql(`SELECT request_id FROM chat.restrictions WHERE user_id = $1 AND lifted_at IS NULL`, [me.id])).length === 1 ? true : undefined), 'the lift to reach chat');
    expect((await http.post(`/v1/conversations/${id}/messages`, { content: 'Hallo' }, token)).status).toBe(403);
    // Restricted is paused, not locked out: the subject still reads what is stored of them (lists as single items).
    expect((await http.get('/v1/conversations?workspace=private', token)).body.data.map((c: { id: string }) => c.id)).toContain(id);
    expect((await http.get(`/v1/conversations/${id}`, token)).status).toBe(200);
    expect((await http.get('/v1/assistants?workspace=private', token)).status).toBe(200);
    await emit('privacy.subject.restriction-lifted', newer);
    await waitFor(async () => ((await http.post(`/v1/conversations/${id}/messages`, { content: 'Hallo' }, token)).status === 201 ? true : undefined), 'chat to resume');
    // A lift that arrives before its restriction (another replica took that one, or it was redelivered) stays a lift.
    const late = randomUUID();
    await emit('privacy.subject.restriction-lifted', late);
    await emit('privacy.subject.restricted', late);
    await waitFor(async () => ((await env.sql(`SELECT 1 FROM chat.inbox WHERE consumer = 'chat-restrictions'`)).length >= 6 ? true : undefined), 'both to reach chat');
    expect(await env.sql(`SELECT lifted_at IS NOT NULL AS lifted FROM chat.restrictions WHERE request_id = $1`, [late])).toEqual([{ lifted: true }]);
    expect((await http.post(`/v1/conversations/${id}/messages`, { content: 'Hallo' }, token)).status).toBe(201);
  });
});
