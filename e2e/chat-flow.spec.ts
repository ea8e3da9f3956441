import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { createHmac, randomBytes } from 'node:crypto';
import OpenAI from 'openai';
import type { RunnableToolFunctionWithParse } from 'openai/lib/RunnableFunction';
import pg from 'pg';
import { ChatRpc, mergeExportPages, privacyRpcs, type PrivacyExport } from '@ally/contracts';
import type { OpenAIEmulator } from '@ally/emulators';
import { RpcClient } from '@ally/messaging';
import { confirmEmail, httpClient, lastEvent, waitFor, type TestEnv } from '@ally/testing';
import { startChatWorld, type ChatWorld } from './chat-world.js';

const PASSWORD = 'Abendrot über den Dächern';
const NON_EU = ['openai-us', 'gpt-4o-mini-global'];

/** Reads an SSE response into its events. */
async function readSse(res: Response): Promise<{ event: string; data: any }[]> {
  const text = await res.text();
  return text
    .split('\n\n')
    .filter((block) => block.includes('data:'))
    .map((block) => {
      const event = /^event: (.*)$/m.exec(block)?.[1] ?? 'message';
      const data = /^data: (.*)$/m.exec(block)![1];
      return { event, data: data === '[DONE]' ? data : JSON.parse(data) };
    });
}

const KEK = randomBytes(32).toString('base64');

const expectProblemStatus = (res: { status: number; headers: Headers }, status: number) =>
  expect({ status: res.status, type: res.headers.get('content-type')?.split(';')[0] }).toEqual({ status, type: 'application/problem+json' });

describe('chat through the gateway: EU residency, streaming, the OpenAI SDK', () => {
  let world: ChatWorld;
  let env: TestEnv;
  let llm: OpenAIEmulator;
  let base: string;
  let http: ReturnType<typeof httpClient>;
  let token: string;
  let userId: string;

  beforeAll(async () => {
    world = await startChatWorld({
      llm: { azureRegions: { 'gpt-4o-mini-swc': 'swedencentral', 'gpt-4o-mini-dzeu': 'germanywestcentral', 'gpt-4o-mini-global': 'eastus' } },
      chat: { PROVIDER_TIMEOUT_MS: '2000', STREAM_HEARTBEAT_MS: '300', CHAT_KEK: KEK },
    });
    ({ env, llm, base, http } = world);
    const reg = await http.post('/v1/auth/register', { email: 'lea@example.eu', password: PASSWORD, firstName: 'Lea', lastName: 'Fischer', locale: 'de' });
    token = reg.body.accessToken;
    userId = reg.body.user.id;
  });

  afterAll(async () => {
    await world?.close();
  });

  // Latency, faults and hangs a test set end with it, also when it failed halfway.
  afterEach(() => llm.reset());

  const conversation = async (workspace = 'private', t = token) => (await http.post('/v1/conversations', { workspace, title: 'Angebot' }, t)).body.id as string;

  it('keeps a user restricted to the EU on EU deployments, with receipts that say so', async () => {
    const models = await http.get('/v1/models', token);
    expect(models.body.object).toBe('list');
    expect(models.body.data.map((m: { id: string }) => m.id).sort()).toEqual(['gpt-4o-mini', 'mistral-small']);
    expect(models.body.data.every((m: { euResident: boolean }) => m.euResident)).toBe(true);

    const id = await conversation();
    const res = await http.post(`/v1/conversations/${id}/messages`, { content: 'Schreib mir ein Angebot für Max Mustermann, max@example.eu' }, token);
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ role: 'assistant', content: 'Echo: Schreib mir ein Angebot für Max Mustermann, max@example.eu', model: 'gpt-4o-mini' });
    expect(res.body.residency).toMatchObject({ provider: 'azure', deployment: 'gpt-4o-mini@azure-swedencentral', region: 'swedencentral', reportedRegion: 'Sweden Central', euResident: true });
    expect(JSON.parse(res.headers.get('x-ally-residency')!).euResident).toBe(true);

    const refused = await http.post(`/v1/conversations/${id}/messages`, { content: 'Hallo', model: 'gpt-4o' }, token);
    expect(refused.status).toBe(422);
    expect(refused.body.detail).toMatch(/restricted to the EU/);
    expect(llm.requests().filter((r) => NON_EU.includes(r.endpoint))).toEqual([]);

    const history = await http.get(`/v1/conversations/${id}`, token);
    expect(history.body.messages.map((m: { role: string }) => m.role)).toEqual(['user', 'assistant']);
    expect(history.body.title).toBe('Angebot');
  });

  it("reads only the newest history a model's window could take: what lies beyond is neither read nor decrypted", async () => {
    const id = await conversation();
    expect((await http.post(`/v1/conversations/${id}/messages`, { content: 'Erste Frage' }, token)).status).toBe(201);
    // Older than that turn: one message larger than the bytes a turn reads (32 per token of the widest window, 128k here),
    // and one that no key opens. Were either read, the turn would fail to decrypt it.
    await env.sql(
      `INSERT INTO chat.messages (id, conversation_id, user_id, role, content_enc, status, created_at)
       VALUES (gen_random_uuid(), $1, $2, 'assistant', decode(repeat('ab', 4200000), 'hex'), 'complete', now() - interval '1 hour'),
              (gen_random_uuid(), $1, $2, 'user', decode('00ff', 'hex'), 'complete', now() - interval '2 hours')`,
      [id, userId],
    );
    const answer = await http.post(`/v1/conversations/${id}/messages`, { content: 'Zweite Frage' }, token);
    expect(answer.status).toBe(201);
    expect(llm.requests({ operation: 'chat.completions' }).at(-1)!.messages.map((m) => m.content)).toEqual(['Erste Frage', expect.any(String), 'Zweite Frage']);
  });

  it('stores no plaintext, and after erasure the content cannot be decrypted even from an earlier copy', async () => {
    // A subject of their own: erased at the end, and refused by chat from then on.
    const reg = await http.post('/v1/auth/register', { email: 'greta@example.eu', password: PASSWORD, firstName: 'Greta', lastName: 'Licht' });
    const [token, userId] = [reg.body.accessToken as string, reg.body.user.id as string];
    const id = await conversation('private', token);
    await conversation('private', token); // a second one, empty: the export holds both
    await http.post(`/v1/conversations/${id}/messages`, { content: 'Geheimprojekt Nordlicht' }, token);
    const copy = await env.sql(`SELECT content_enc FROM chat.messages WHERE conversation_id = $1`, [id]);
    expect(copy.length).toBe(2);
    const dump = JSON.stringify(await env.sql(`SELECT * FROM chat.messages`)) + JSON.stringify(await env.sql(`SELECT * FROM chat.conversations`));
    expect(dump).not.toContain('Nordlicht');
    expect(dump).not.toContain('Angebot');

    const rpc = new RpcClient(await env.nats(), env.prefix);
    await rpc.connect();
    // Enough messages for several export pages (a page must fit one NATS message).
    await env.sql(`INSERT INTO chat.messages (id, conversation_id, user_id, role, content_enc, status, created_at)
                   SELECT gen_random_uuid(), conversation_id, user_id, role, content_enc, status, created_at + (g * interval '1 ms')
                     FROM chat.messages, generate_series(1, 1100) g WHERE conversation_id = $1`, [id]);
    const pages = [];
    for (let page: number | string | undefined = 0; page !== undefined; ) {
      const answer: PrivacyExport = await rpc.call(privacyRpcs('chat').export, { userId, scope: 'all', page });
      pages.push(answer);
      page = answer.nextPage;
    }
    expect(pages.length).toBe(3);
    const exported = mergeExportPages(pages);
    const history = exported.categories['chat-history'] as { messages: { content: string }[]; conversations: unknown[] };
    expect(history.messages.filter((m) => m.content === 'Geheimprojekt Nordlicht')).toHaveLength(1101);
    expect(history.conversations.length).toBeGreaterThan(1);
    // An event not out yet (no stream takes its subject, so it stays unsent) that names the subject.
    await env.sql(`INSERT INTO chat.outbox (id, subject, type, payload) VALUES (gen_random_uuid(), 'ally.unrouted.test', 'chat.completion.recorded', $1::jsonb)`, [
      JSON.stringify({ data: { userId, workspace: 'private', tokens: 7 } }),
    ]);
    const erased = await rpc.call(privacyRpcs('chat').erase, { userId, scope: 'all' });
    expect(erased.affected['data-keys']).toBe(1);
    await rpc.close();
    expect(await env.sql(`SELECT * FROM chat.messages WHERE user_id = $1`, [userId])).toEqual([]);
    // The copy taken before erasure is noise now: the user's data key is gone.
    const keys = await env.sql(`SELECT * FROM chat.data_keys WHERE user_id = $1`, [userId]);
    expect(keys).toEqual([]);
    expect(copy[0].content_enc.toString('utf8')).not.toContain('Nordlicht');
    expect((await http.post('/v1/conversations', { workspace: 'private' }, token)).status).toBe(410);
    const unsent = await env.sql(`SELECT payload FROM chat.outbox WHERE subject = 'ally.unrouted.test'`);
    expect(unsent).toEqual([{ payload: { data: { userId: '00000000-0000-0000-0000-000000000000', workspace: 'private', tokens: 7 } } }]);
    await env.sql(`DELETE FROM chat.outbox WHERE subject = 'ally.unrouted.test'`); // it would hold up the relay's queue
  });

  it('creates no conversation for a subject whose erasure is running: it waits for it, then refuses', async () => {
    const reg = await http.post('/v1/auth/register', { email: 'ines@example.eu', password: PASSWORD, firstName: 'Ines', lastName: 'Eile' });
    const [t, id] = [reg.body.accessToken as string, reg.body.user.id as string];
    // An erasure in its transaction: the subject's lock taken, the mark written, not yet committed.
    const erasure = new pg.Client({ connectionString: env.adminUrl });
    await erasure.connect();
    await erasure.query('BEGIN');
    await erasure.query(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, [id]);
    await erasure.query(`INSERT INTO chat.erased_subjects (mark) VALUES ($1)`, [createHmac('sha256', Buffer.from(KEK, 'base64')).update(`erased:${id}`).digest()]);
    const creating = http.post('/v1/conversations', { workspace: 'private', title: 'Gleichzeitig' }, t);
    await new Promise((r) => setTimeout(r, 300));
    await erasure.query('COMMIT');
    await erasure.end();
    expect((await creating).status).toBe(410);
    expect(await env.sql(`SELECT 1 FROM chat.conversations WHERE user_id = $1`, [id])).toEqual([]);
  });

  it('creates more conversations at once than chat has database connections (10), none waiting on the pool from inside its transaction', async () => {
    const started = Date.now();
    const created = await Promise.all(Array.from({ length: 40 }, (_, i) => http.post('/v1/conversations', { workspace: 'private', title: `Stapel ${i}` }, token)));
    expect(created.map((r) => r.status)).toEqual(Array(40).fill(201));
    // A starved pool shows as the 5 s connection timeout, then 500s.
    expect(Date.now() - started).toBeLessThan(4_000);
    expect(await env.sql(`SELECT count(*)::int AS n FROM chat.conversations WHERE id = ANY($1)`, [created.map((r) => r.body.id)])).toEqual([{ n: 40 }]);
  });

  it('lets non-EU models serve a user who turned the restriction off, but an organisation enforcing EU-only still wins for its workspace', async () => {
    const reg = await http.post('/v1/auth/register', { email: 'tom@example.eu', password: PASSWORD, firstName: 'Tom', lastName: 'Weber' });
    const t = reg.body.accessToken;
    expect((await http.patch('/v1/me/settings', { restrictToEu: false }, t)).status).toBe(200);
    const priv = await conversation('private', t);
    const served = await waitFor(async () => {
      const r = await http.post(`/v1/conversations/${priv}/messages`, { content: 'Hi', model: 'gpt-4o' }, t);
      return r.status === 201 ? r : undefined;
    }, 'the settings change to reach chat');
    expect(served.body.residency).toMatchObject({ deployment: 'gpt-4o@openai-us', euResident: false, region: 'us' });
    expect(llm.requests({ endpoint: 'openai-us' }).length).toBeGreaterThan(0);

    const org = (await http.post('/v1/orgs', { name: 'Weber Logistik GmbH' }, t)).body;
    const business = await conversation(org.id, t);
    const refused = await http.post(`/v1/conversations/${business}/messages`, { content: 'Hi', model: 'gpt-4o' }, t);
    expect(refused.status).toBe(422);
    expect(refused.body.detail).toMatch(/organisation enforces EU-only/);
    const eu = await http.post(`/v1/conversations/${business}/messages`, { content: 'Hi' }, t);
    expect(eu.body.residency.euResident).toBe(true);
  });

  it('does not fall back outside the EU for a request accepted before its user turned restrictToEu on', async () => {
    const reg = await http.post('/v1/auth/register', { email: 'uwe@example.eu', password: PASSWORD, firstName: 'Uwe', lastName: 'Lange' });
    const t = reg.body.accessToken;
    expect((await http.patch('/v1/me/settings', { restrictToEu: false }, t)).status).toBe(200);
    const priv = await conversation('private', t);
    // Sweden Central hangs until PROVIDER_TIMEOUT_MS; the other EU deployments are down: the next in line is Global.
    llm.hangNext({ deployment: 'gpt-4o-mini-swc' });
    llm.failNext({ deployment: 'gpt-4o-mini-dzeu', status: 503 });
    llm.failNext({ endpoint: 'openai-eu', status: 503 });
    const asked = http.post(`/v1/conversations/${priv}/messages`, { content: 'Vertraulich', model: 'gpt-4o-mini' }, t);
    await llm.waitForRequest({ deployment: 'gpt-4o-mini-swc' });
    expect((await http.patch('/v1/me/settings', { restrictToEu: true }, t)).status).toBe(200);

    const res = await asked;
    expect(res.status).toBe(503);
    expect(llm.requests({ deployment: 'gpt-4o-mini-dzeu' })).toHaveLength(1);
    expect(NON_EU.flatMap((endpoint) => llm.requests({ endpoint }))).toEqual([]);
  });

  it('sends nothing outside the EU, not even to the first deployment, once restrictToEu was turned on while the prompt was being moderated', async () => {
    const reg = await http.post('/v1/auth/register', { email: 'mona@example.eu', password: PASSWORD, firstName: 'Mona', lastName: 'Moderat' });
    const t = reg.body.accessToken;
    expect((await http.patch('/v1/me/settings', { restrictToEu: false }, t)).status).toBe(200);
    const priv = await conversation('private', t);
    for (const stream of [false, true]) {
      // gpt-4o is served outside the EU only; its prompt is first moderated in the EU, which takes its time here.
      llm.hangNext({ endpoint: 'openai-eu', operation: 'moderations' });
      const before = llm.requests({ endpoint: 'openai-us' }).length;
      const asked = http.request('POST', `/v1/conversations/${priv}/messages`, { token: t, body: { content: 'Geheimer Inhalt', model: 'gpt-4o' }, headers: stream ? { accept: 'text/event-stream' } : {} });
      await llm.waitForRequest({ endpoint: 'openai-eu', operation: 'moderations' });
      expect((await http.patch('/v1/me/settings', { restrictToEu: true }, t)).status).toBe(200);
      const res = await asked;
      // Told why, as if the change had come first (a stream that has sent nothing yet answers as plainly).
      expect({ status: res.status, type: res.body.type }).toEqual({ status: 422, type: 'https://ally.eu/problems/no-eu-deployment' });
      expect(llm.requests({ endpoint: 'openai-us' }).length).toBe(before);
      expect((await http.patch('/v1/me/settings', { restrictToEu: false }, t)).status).toBe(200);
    }
  });

  it('routes by a change of restrictToEu or of an organisation\'s EU-only policy from the moment its PATCH answers, not when identity\'s event arrives', async () => {
    const reg = await http.post('/v1/auth/register', { email: 'ida@example.eu', password: PASSWORD, firstName: 'Ida', lastName: 'Brandt' });
    const t = reg.body.accessToken;
    const ask = (conv: string) => http.post(`/v1/conversations/${conv}/messages`, { content: 'Sofort', model: 'gpt-4o' }, t);
    const priv = await conversation('private', t);
    // Each answer is sent the instant the change was answered: no waiting for chat's replica.
    for (let round = 0; round < 3; round++) {
      expect((await http.patch('/v1/me/settings', { restrictToEu: false }, t)).status).toBe(200);
      const open = await ask(priv);
      expect(open.status).toBe(201);
      expect(open.body.residency.euResident).toBe(false);
      llm.clearRequests();
      expect((await http.patch('/v1/me/settings', { restrictToEu: true }, t)).status).toBe(200);
      const held = await ask(priv);
      expect(held.status).toBe(422);
      expect(NON_EU.flatMap((endpoint) => llm.requests({ endpoint }))).toEqual([]);
    }

    // identity's clock a minute ahead of chat's: the replica holds "off" from an event dated in chat's future. Switching it
    // on still holds at once, and that event, delivered again afterwards, does not undo it.
    expect((await http.patch('/v1/me/settings', { restrictToEu: false }, t)).status).toBe(200);
    const userId = reg.body.user.id;
    await env.sql(`UPDATE chat.user_settings SET restrict_to_eu = false, updated_at = now() + interval '1 minute' WHERE user_id = $1`, [userId]);
    expect((await http.patch('/v1/me/settings', { restrictToEu: true }, t)).status).toBe(200);
    expect((await ask(priv)).status).toBe(422);
    expect(await env.sql(`SELECT restrict_to_eu FROM chat.user_settings WHERE user_id = $1 AND updated_at > now() + interval '50 seconds'`, [userId])).toEqual([{ restrict_to_eu: true }]);

    expect((await http.patch('/v1/me/settings', { restrictToEu: false }, t)).status).toBe(200);
    const org = (await http.post('/v1/orgs', { name: 'Brandt Werkzeuge GmbH' }, t)).body;
    const business = await conversation(org.id, t);
    expect((await http.patch(`/v1/orgs/${org.id}/policy`, { euOnly: false }, t)).status).toBe(200);
    const allowed = await ask(business);
    expect(allowed.status).toBe(201);
    expect(allowed.body.residency.euResident).toBe(false);
    expect((await http.patch(`/v1/orgs/${org.id}/policy`, { euOnly: true }, t)).status).toBe(200);
    const refused = await ask(business);
    expect(refused.status).toBe(422);
    expect(refused.body.detail).toMatch(/organisation enforces EU-only/);
  });

  it('opens a conversation larger than one NATS message page by page: the newest first, then older ones by nextCursor', async () => {
    const id = await conversation();
    const long = (i: number) => `${i}`.padEnd(99_000, ' lang');
    for (let i = 0; i < 6; i++) expect((await http.post(`/v1/conversations/${id}/messages`, { content: long(i) }, token)).status).toBe(201);
    const first = await http.get(`/v1/conversations/${id}`, token);
    expect(first.status).toBe(200);
    expect(first.body.nextCursor).toEqual(expect.any(String));
    const pages = [first.body];
    while (pages.at(-1).nextCursor) {
      const next = await http.get(`/v1/conversations/${id}?cursor=${pages.at(-1).nextCursor}`, token);
      expect(next.status).toBe(200);
      pages.push(next.body);
    }
    const all = pages.reverse().flatMap((p) => p.messages);
    expect(all).toHaveLength(12);
    expect(all.filter((m: { role: string }) => m.role === 'user').map((m: { content: string }) => m.content)).toEqual([0, 1, 2, 3, 4, 5].map(long));
    expect(new Set(all.map((m: { id: string }) => m.id)).size).toBe(12);

    const two = await http.get(`/v1/conversations/${id}?limit=2`, token);
    expect(two.body.messages.map((m: { role: string }) => m.role)).toEqual(['user', 'assistant']);
    expect(two.body.messages[0].content).toBe(long(5));
    expectProblemStatus(await http.get(`/v1/conversations/${id}?limit=0`, token), 400);
    expectProblemStatus(await http.get(`/v1/conversations/${id}?cursor=nonsense`, token), 400);
  });

  it('keeps each question next to its answer when messages to one conversation are answered at the same moment', async () => {
    const id = await conversation();
    const asked: string[] = [];
    // One clock reading for every save: the same millisecond, which a busy replica does hit.
    jest.useFakeTimers({ now: Date.now(), doNotFake: ['hrtime', 'nextTick', 'performance', 'queueMicrotask', 'setImmediate', 'clearImmediate', 'setInterval', 'clearInterval', 'setTimeout', 'clearTimeout'] });
    try {
      for (let round = 0; round < 3; round++) {
        const contents = Array.from({ length: 6 }, (_, i) => `Frage ${round}.${i}`);
        asked.push(...contents);
        const answers = await Promise.all(contents.map((content) => http.post(`/v1/conversations/${id}/messages`, { content }, token)));
        expect(answers.map((a) => a.status)).toEqual(contents.map(() => 201));
      }
    } finally {
      jest.useRealTimers();
    }
    const { messages } = (await http.get(`/v1/conversations/${id}`, token)).body as { messages: { role: string; content: string; createdAt: string }[] };
    expect(messages).toHaveLength(asked.length * 2);
    const pairs = Array.from({ length: asked.length }, (_, i) => [messages[2 * i], messages[2 * i + 1]]);
    expect(pairs.map(([q, a]) => [q.role, a.role, a.content])).toEqual(pairs.map(([q]) => ['user', 'assistant', `Echo: ${q.content}`]));
    expect(new Set(pairs.map(([q]) => q.content))).toEqual(new Set(asked));
    // The order is the times' order: what a client sorting by createdAt sees, and what the export lists.
    const times = messages.map((m) => Date.parse(m.createdAt));
    expect(times).toEqual([...times].sort((x, y) => x - y));
    expect(new Set(times).size).toBe(times.length);
  });

  it('falls back to another allowed deployment when the provider answers 500', async () => {
    llm.failNext({ status: 500, deployment: 'gpt-4o-mini-swc', times: 1 });
    const id = await conversation();
    const res = await http.post(`/v1/conversations/${id}/messages`, { content: 'Fallback bitte' }, token);
    expect(res.status).toBe(201);
    expect(res.body.residency).toMatchObject({ deployment: 'gpt-4o-mini@azure-datazone-eu', reportedRegion: 'Germany West Central', euResident: true });
  });

  it('falls back for a whole answer when the provider sends an error in its stream before any text; a streamed answer, whose receipt is out, breaks off instead', async () => {
    const id = await conversation();
    llm.clearRequests();
    llm.failNext({ status: 500, deployment: 'gpt-4o-mini-swc', times: 1, inStream: true });
    const whole = await http.post(`/v1/conversations/${id}/messages`, { content: 'Fehler im Strom' }, token);
    expect(whole.status).toBe(201);
    expect(whole.body.residency).toMatchObject({ deployment: 'gpt-4o-mini@azure-datazone-eu', euResident: true });
    expect(llm.requests({ deployment: 'gpt-4o-mini-swc' }).map((r) => ({ status: r.status, fault: r.fault }))).toEqual([{ status: 200, fault: 'error' }]);

    llm.failNext({ status: 500, deployment: 'gpt-4o-mini-swc', times: 1, inStream: true });
    const res = await fetch(`${base}/v1/conversations/${id}/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ content: 'Fehler im Strom, gestreamt' }),
    });
    expect(JSON.parse(res.headers.get('x-ally-residency')!).deployment).toBe('gpt-4o-mini@azure-swedencentral');
    const events = await readSse(res);
    expect(events.at(-1)).toMatchObject({ event: 'error', data: { status: 502 } });
  });

  it('falls back when a deployment is rate-limited (429) or does not answer within PROVIDER_TIMEOUT_MS, and the call it gave up on is aborted', async () => {
    llm.failNext({ status: 429, deployment: 'gpt-4o-mini-swc', times: 1, retryAfterSeconds: 20 });
    const id = await conversation();
    const limited = await http.post(`/v1/conversations/${id}/messages`, { content: 'Zu viele Anfragen' }, token);
    expect(limited.status).toBe(201);
    expect(limited.body.residency.deployment).toBe('gpt-4o-mini@azure-datazone-eu');

    llm.clearRequests();
    llm.hangNext({ deployment: 'gpt-4o-mini-swc', times: 1 });
    const started = Date.now();
    const slow = await http.post(`/v1/conversations/${id}/messages`, { content: 'Keine Antwort?' }, token);
    expect(slow.status).toBe(201);
    expect(slow.body.residency.deployment).toBe('gpt-4o-mini@azure-datazone-eu');
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_900);
    const hung = await llm.waitForRequest({ deployment: 'gpt-4o-mini-swc', aborted: true }, 5_000);
    expect(hung.completed).toBe(false);
  });

  it('answers 503 with the soonest Retry-After the providers gave when every allowed deployment is rate-limited', async () => {
    llm.failNext({ status: 429, deployment: 'gpt-4o-mini-swc', times: 1, retryAfterSeconds: 20 });
    llm.failNext({ status: 429, deployment: 'gpt-4o-mini-dzeu', times: 1, retryAfterSeconds: 7 });
    llm.failNext({ status: 429, endpoint: 'openai-eu', times: 1, retryAfterSeconds: 30 });
    const id = await conversation();
    const res = await http.post(`/v1/conversations/${id}/messages`, { content: 'Alle ausgelastet', model: 'gpt-4o-mini' }, token);
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('7');
  });

  it('holds the SSE answer back while chat only sends heartbeats, so a fallback still sets x-ally-residency and a failure is still a plain 503', async () => {
    const stream = (id: string) =>
      fetch(`${base}/v1/conversations/${id}/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'text/event-stream' },
        body: JSON.stringify({ content: 'Warten auf Antwort' }),
      });
    const id = await conversation();
    llm.hangNext({ deployment: 'gpt-4o-mini-swc', times: 1 }); // ~2 s until PROVIDER_TIMEOUT_MS: heartbeats meanwhile
    const fellBack = await stream(id);
    expect(fellBack.status).toBe(200);
    expect(JSON.parse(fellBack.headers.get('x-ally-residency')!).deployment).toBe('gpt-4o-mini@azure-datazone-eu');
    expect(await fellBack.text()).toContain('event: done');

    llm.hangNext({ deployment: 'gpt-4o-mini-swc', times: 1 });
    llm.failNext({ status: 500, deployment: 'gpt-4o-mini-dzeu', times: 1 });
    llm.failNext({ status: 500, endpoint: 'openai-eu', times: 1 });
    const failed = await stream(id);
    expect(failed.status).toBe(503);
    expect(failed.headers.get('content-type')).toMatch(/application\/problem\+json/);
  });

  it('streams an answer as SSE: deltas, then done with usage and residency', async () => {
    const id = await conversation();
    const res = await fetch(`${base}/v1/conversations/${id}/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ content: 'eins zwei drei' }),
    });
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    expect(JSON.parse(res.headers.get('x-ally-residency')!).euResident).toBe(true);
    const events = await readSse(res);
    const deltas = events.filter((e) => e.event === 'delta').map((e) => e.data.text).join('');
    expect(deltas).toBe('Echo: eins zwei drei');
    const done = events.at(-1)!;
    expect(done.event).toBe('done');
    expect(done.data.usage).toEqual({ promptTokens: expect.any(Number), completionTokens: 4 });
    expect(done.data.residency.euResident).toBe(true);
  });

  it('aborts the provider call when the client disconnects mid-stream', async () => {
    llm.setLatency({ latencyPerTokenMs: 20, deployment: 'gpt-4o-mini-swc' });
    const id = await conversation();
    const controller = new AbortController();
    const res = await fetch(`${base}/v1/conversations/${id}/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ content: '#tokens=500 lang' }),
      signal: controller.signal,
    });
    const reader = res.body!.getReader();
    await reader.read();
    controller.abort();
    const aborted = await llm.waitForRequest({ deployment: 'gpt-4o-mini-swc', aborted: true }, 10_000);
    expect(aborted.completed).toBe(false);
    llm.reset();
    // What the user saw is kept, marked as cut off, never as a complete answer.
    const saved = await waitFor(async () => {
      const c = await http.get(`/v1/conversations/${id}`, token);
      return c.body.messages?.length === 2 ? c.body : undefined;
    }, 'the cut-off answer to be saved');
    expect(saved.messages[1]).toMatchObject({ role: 'assistant', status: 'aborted' });
    expect(saved.messages[1].content.split(' ').length).toBeLessThan(500);
  });

  it('aborts the provider call when the client of a non-streamed answer goes away, here and on /v1/chat/completions, and bills what was generated', async () => {
    llm.setLatency({ latencyPerTokenMs: 20, deployment: 'gpt-4o-mini-swc' });
    const key = (await http.post('/v1/me/api-keys', { name: 'leaves', workspace: 'private' }, token)).body.key;
    const id = await conversation();
    const calls = [
      { path: `/v1/conversations/${id}/messages`, auth: token, body: { content: '#tokens=500 lang' } },
      { path: '/v1/chat/completions', auth: key, body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: '#tokens=500 lang' }] } },
    ];
    const billed = async () =>
      env.sql<{ completion: number }>(
        `SELECT (payload->'data'->>'completionTokens')::int AS completion FROM chat.outbox WHERE type = 'chat.completion.recorded' AND payload->'data'->>'userId' = $1 ORDER BY created_at, id`,
        [userId],
      );
    for (const call of calls) {
      llm.clearRequests();
      const before = (await billed()).length;
      const controller = new AbortController();
      const pending = fetch(`${base}${call.path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${call.auth}`, 'content-type': 'application/json' },
        body: JSON.stringify(call.body),
        signal: controller.signal,
      }).catch(() => undefined);
      await llm.waitForRequest({ deployment: 'gpt-4o-mini-swc' }, 5_000);
      // Some tokens in (20 ms each): the provider spent them, and they are billed though nobody read them.
      await new Promise((r) => setTimeout(r, 300));
      controller.abort();
      await pending;
      // Well before PROVIDER_TIMEOUT_MS (2 s) would have cut it, and no fallback tried.
      const aborted = await llm.waitForRequest({ deployment: 'gpt-4o-mini-swc', aborted: true }, 1_500);
      expect(aborted.completed).toBe(false);
      expect(llm.requests({ operation: 'chat.completions' })).toHaveLength(1);
      const usage = await waitFor(async () => ((await billed()).length > before ? (await billed()).at(-1) : undefined), 'the usage of the part generated');
      expect(usage!.completion).toBeGreaterThan(0);
      expect(usage!.completion).toBeLessThan(500);
    }
    llm.reset();
    // Nothing half-done is kept from a call nobody waited for.
    expect((await http.get(`/v1/conversations/${id}`, token)).body.messages).toEqual([]);
  });

  it('keeps and bills what the user saw when the provider stalls mid-answer, and says it broke off', async () => {
    const id = await conversation();
    llm.hangNext({ deployment: 'gpt-4o-mini-swc', afterTokens: 5 });
    const res = await fetch(`${base}/v1/conversations/${id}/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ content: '#tokens=50 stockt' }),
    });
    const events = await readSse(res);
    expect(events.filter((e) => e.event === 'delta').map((e) => e.data.text).join('')).toBe('lorem lorem lorem lorem lorem');
    expect(events.at(-1)).toMatchObject({ event: 'error', data: { status: 504, detail: expect.stringMatching(/stopped sending the answer/) } });
    const saved = await waitFor(async () => {
      const c = await http.get(`/v1/conversations/${id}`, token);
      return c.body.messages?.length === 2 ? c.body : undefined;
    }, 'the broken-off answer to be saved');
    expect(saved.messages.map((m: { role: string; status?: string }) => [m.role, m.status])).toEqual([['user', undefined], ['assistant', 'aborted']]);
    // Billed by our own count of what was generated: the provider's usage never came.
    const { usage: counted } = saved.messages[1];
    expect(saved.messages[1].content).toBe('lorem lorem lorem lorem lorem');
    expect(counted.completionTokens).toBeGreaterThanOrEqual(5);
    const [usage] = await env.sql(`SELECT payload FROM chat.outbox WHERE type = 'chat.completion.recorded' AND payload->'data'->>'messageId' = $1`, [saved.messages[1].id]);
    expect(usage.payload.data).toMatchObject({ ...counted, deployment: 'gpt-4o-mini@azure-swedencentral' });
  });

  it('bills an answer whose turn could not be saved (the database failed the write): the provider spent the tokens', async () => {
    const id = await conversation();
    const usageEvents = async () => (await env.sql(`SELECT 1 FROM chat.outbox WHERE type = 'chat.completion.recorded' AND payload->'data'->>'userId' = $1 ORDER BY created_at, id`, [userId])).length;
    const before = await usageEvents();
    // A write that fails for the database's own reasons (here a trigger standing in for a full disk), not an erasure's 410.
    await env.sql(`CREATE FUNCTION chat.test_refuse_turn() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.conversation_id = '${id}' THEN RAISE EXCEPTION 'could not extend file: No space left on device'; END IF; RETURN NEW; END $$`);
    await env.sql(`CREATE TRIGGER test_refuse_turn BEFORE INSERT ON chat.messages FOR EACH ROW EXECUTE FUNCTION chat.test_refuse_turn()`);
    try {
      const res = await http.post(`/v1/conversations/${id}/messages`, { content: '#tokens=7 nicht gespeichert' }, token);
      expect(res.status).toBe(500);
    } finally {
      await env.sql(`DROP TRIGGER test_refuse_turn ON chat.messages`);
      await env.sql(`DROP FUNCTION chat.test_refuse_turn()`);
    }
    expect(await usageEvents()).toBe(before + 1);
    expect((await http.get(`/v1/conversations/${id}`, token)).body.messages).toEqual([]);
  });

  it('falls back when a deployment refuses its own credentials (401): an operator\'s slip on one deployment, not the request', async () => {
    llm.failNext({ status: 401, deployment: 'gpt-4o-mini-swc', times: 1, message: 'Access denied due to invalid subscription key', code: '401', type: 'invalid_request_error' });
    const id = await conversation();
    const res = await http.post(`/v1/conversations/${id}/messages`, { content: 'Schlüssel falsch' }, token);
    expect(res.status).toBe(201);
    expect(res.body.residency).toMatchObject({ deployment: 'gpt-4o-mini@azure-datazone-eu', euResident: true });
  });

  it("answers a provider's refusal of the request's parameters with 422, without the provider's words", async () => {
    const id = await conversation();
    llm.failNext({ status: 400, deployment: 'gpt-4o-mini-swc', message: 'max_tokens is too large: 128000 (deployment gpt-4o-mini-swc)', code: null, type: 'invalid_request_error' });
    const refused = await http.post(`/v1/conversations/${id}/messages`, { content: 'Hallo' }, token);
    expect(refused.status).toBe(422);
    expect(refused.body.type).toBe('https://ally.eu/problems/model-refused-request');
    expect(JSON.stringify(refused.body)).not.toContain('gpt-4o-mini-swc');
  });

  it("closes an organisation's conversations to a member from the moment the removal answers", async () => {
    const org = (await http.post('/v1/orgs', { name: 'Fischer Logistik GmbH' }, token)).body;
    await confirmEmail(env, userId);
    const invite = await http.post(`/v1/orgs/${org.id}/invitations`, { email: 'jonas@example.eu', role: 'member' }, token);
    const jonas = (await http.post('/v1/auth/register', { email: 'jonas@example.eu', password: PASSWORD, firstName: 'Jonas', lastName: 'Weber' })).body;
    const invitation = await lastEvent<{ invitationId: string; token: string }>(env, 'identity.invitation.created', (e) => e.data.invitationId === invite.body.id);
    expect((await http.post('/v1/invitations/accept', { token: invitation.data.token }, jonas.accessToken)).status).toBe(200);
    const id = await waitFor(async () => (await http.post('/v1/conversations', { workspace: org.id }, jonas.accessToken)).body.id as string | undefined, 'the membership to reach chat');
    expect((await http.get(`/v1/conversations/${id}`, jonas.accessToken)).status).toBe(200);

    expect((await http.delete(`/v1/orgs/${org.id}/members/${jonas.user.id}`, token)).status).toBe(204);
    // Not when identity's event arrives: nothing new is written to the organisation by someone no longer in it.
    expect((await http.post(`/v1/conversations/${id}/messages`, { content: 'Noch drin?' }, jonas.accessToken)).status).toBe(404);
    expect((await http.get(`/v1/conversations/${id}`, jonas.accessToken)).status).toBe(404);
    expect((await http.get(`/v1/conversations?workspace=${org.id}`, jonas.accessToken)).status).toBe(404);
    expect((await http.delete(`/v1/conversations/${id}`, jonas.accessToken)).status).toBe(404);
    expect((await env.sql(`SELECT count(*)::int AS n FROM chat.messages WHERE conversation_id = $1`, [id]))[0].n).toBe(0);
    // Told of a removal identity does not confirm, chat keeps the membership: it asks identity, as the member.
    const rpc = new RpcClient(await env.nats(), env.prefix);
    await rpc.connect();
    await rpc.call(ChatRpc.refreshPolicy, { orgId: org.id, removedMember: userId }, { actor: { userId: jonas.user.id, platformRoles: [] } });
    await rpc.close();
    expect((await http.get(`/v1/conversations?workspace=${org.id}`, token)).status).toBe(200);
    expect((await env.sql(`SELECT count(*)::int AS n FROM chat.memberships WHERE org_id = $1 AND user_id = $2`, [org.id, userId]))[0].n).toBe(1);
    expect((await env.sql(`SELECT 1 FROM chat.conversations WHERE id = $1`, [id])).length).toBe(1);
  });

  it('opens an organisation\'s chat to a new member from the moment the acceptance answers, also after they were turned away from it', async () => {
    const org = (await http.post('/v1/orgs', { name: 'Fischer Neuzugang GmbH' }, token)).body;
    // The owner confirmed their address in the test before (an owner must, to invite).
    const invite = await http.post(`/v1/orgs/${org.id}/invitations`, { email: 'nele@example.eu', role: 'member' }, token);
    const nele = (await http.post('/v1/auth/register', { email: 'nele@example.eu', password: PASSWORD, firstName: 'Nele', lastName: 'Neu' })).body;
    // Before joining, a stranger to it: enough refusals that chat stops asking identity about her for a while.
    for (let i = 0; i < 6; i++) expect((await http.get(`/v1/conversations?workspace=${org.id}`, nele.accessToken)).status).toBe(404);
    const invitation = await lastEvent<{ invitationId: string; token: string }>(env, 'identity.invitation.created', (e) => e.data.invitationId === invite.body.id);
    expect((await http.post('/v1/invitations/accept', { token: invitation.data.token }, nele.accessToken)).status).toBe(200);
    expect((await http.post('/v1/conversations', { workspace: org.id }, nele.accessToken)).status).toBe(201);
  });

  it('says why no model can be used when an organisation allows only models without an EU deployment for a user restricted to the EU', async () => {
    const lotte = (await http.post('/v1/auth/register', { email: 'lotte@example.eu', password: PASSWORD, firstName: 'Lotte', lastName: 'Krüger' })).body.accessToken as string;
    const org = (await http.post('/v1/orgs', { name: 'Nur Übersee GmbH' }, lotte)).body;
    expect((await http.patch(`/v1/orgs/${org.id}/policy`, { euOnly: false, allowedModels: ['gpt-4o'] }, lotte)).status).toBe(200);
    const id = await waitFor(async () => (await http.post('/v1/conversations', { workspace: org.id }, lotte)).body.id as string | undefined, 'the organisation to reach chat');
    const refused = await http.post(`/v1/conversations/${id}/messages`, { content: 'Hallo' }, lotte);
    expectProblemStatus(refused, 422);
    expect(refused.body).toMatchObject({
      type: 'https://ally.eu/problems/no-eu-deployment',
      detail: 'No model can be used: your organisation allows only "gpt-4o", none has an EU deployment available, and your account is restricted to the EU (restrictToEu)',
    });
    expect((await http.patch(`/v1/orgs/${org.id}/policy`, { allowedModels: [] }, lotte)).status).toBe(200);
    const none = await http.post(`/v1/conversations/${id}/messages`, { content: 'Hallo' }, lotte);
    expect({ status: none.status, detail: none.body.detail }).toEqual({ status: 422, detail: 'Your organisation allows no model' });
  });

  it("stores an organisation's allowed models once each", async () => {
    const org = (await http.post('/v1/orgs', { name: 'Doppelt Modell GmbH' }, token)).body;
    const res = await http.patch(`/v1/orgs/${org.id}/policy`, { allowedModels: ['gpt-4o-mini', 'gpt-4o-mini', 'gpt-4o'] }, token);
    expect({ status: res.status, allowedModels: res.body.allowedModels }).toEqual({ status: 200, allowedModels: ['gpt-4o-mini', 'gpt-4o'] });
  });

  it('answers a burst of requests for an organisation whose membership event is still on its way (one fetch from identity for all)', async () => {
    const org = (await http.post('/v1/orgs', { name: 'Fischer Eilig GmbH' }, token)).body;
    await waitFor(async () => ((await http.get(`/v1/conversations?workspace=${org.id}`, token)).status === 200 ? true : undefined), 'the organisation to reach chat');
    await env.sql(`DELETE FROM chat.memberships WHERE org_id = $1`, [org.id]); // as if member.added were late
    const statuses = await Promise.all(Array.from({ length: 8 }, async () => (await http.get(`/v1/conversations?workspace=${org.id}`, token)).status));
    expect(statuses).toEqual(Array(8).fill(200));
  });

  it('works with the official openai SDK and an Ally API key, streamed and not', async () => {
    const key = (await http.post('/v1/me/api-keys', { name: 'sdk', workspace: 'private' }, token)).body.key;
    const client = new OpenAI({ apiKey: key, baseURL: `${base}/v1`, maxRetries: 0 });
    const { data: completion, response } = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Guten Morgen' }] }).withResponse();
    expect(completion.choices[0].message.content).toBe('Echo: Guten Morgen');
    expect(completion.usage?.completion_tokens).toBe(3);
    expect(JSON.parse(response.headers.get('x-ally-residency')!).euResident).toBe(true);

    const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Guten Abend' }], stream: true, stream_options: { include_usage: true } });
    let text = '';
    let usage;
    const ids = new Set<string>();
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      if (chunk.usage) usage = chunk.usage;
      ids.add(chunk.id);
    }
    expect(text).toBe('Echo: Guten Abend');
    expect(usage).toMatchObject({ completion_tokens: 3 });
    // Every chunk names the answer by the id its usage is recorded under, as the whole answer's id does.
    const [id] = [...ids];
    expect(ids.size).toBe(1);
    for (const answerId of [id, completion.id]) {
      const recorded = await waitFor(async () => (await env.sql(`SELECT 1 FROM chat.outbox WHERE type = 'chat.completion.recorded' AND payload->'data'->>'messageId' = $1`, [answerId.replace(/^chatcmpl-/, '')]))[0], `the usage of ${answerId}`);
      expect(recorded).toBeDefined();
    }

    // One model, as the SDK asks for it; one the policy does not allow (the key's user is restricted to the EU) is not there.
    expect(await client.models.retrieve('gpt-4o-mini')).toMatchObject({ id: 'gpt-4o-mini', object: 'model', euResident: true });
    await expect(client.models.retrieve('gpt-4o')).rejects.toMatchObject({ status: 404 });

    // Cut by max_tokens: the provider's finish reason comes through, so the SDK user sees the truncation.
    const cut = await client.chat.completions.create({ model: 'gpt-4o-mini', max_tokens: 3, messages: [{ role: 'user', content: '#tokens=10 lang' }] });
    expect(cut.choices[0].finish_reason).toBe('length');
    const cutStream = await client.chat.completions.create({ model: 'gpt-4o-mini', max_tokens: 3, messages: [{ role: 'user', content: '#tokens=10 lang' }], stream: true });
    const reasons: (string | null)[] = [];
    for await (const chunk of cutStream) reasons.push(chunk.choices[0]?.finish_reason ?? null);
    expect(reasons.filter(Boolean)).toEqual(['length']);
    // An OpenAI-compatible server's own words reach the SDK in OpenAI's; one that says it broke the answer off is a failure.
    const eos = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hallo #finish=eos_token' }] });
    expect(eos.choices[0].finish_reason).toBe('stop');
    await expect(client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hallo #finish=error' }] })).rejects.toMatchObject({ status: 502 });
    // Its text was generated and billed: the SDK, which asks again after a 5xx twice by default, is told not to.
    llm.clearRequests();
    const retrying = new OpenAI({ apiKey: key, baseURL: `${base}/v1` });
    const brokeOff = await retrying.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Noch mal #finish=error' }] }).catch((err) => err);
    expect({ status: brokeOff.status, retry: brokeOff.headers?.get('x-should-retry') }).toEqual({ status: 502, retry: 'false' });
    expect(llm.requests({ operation: 'chat.completions' })).toHaveLength(1);

    // JSON mode and structured outputs reach the deployment as the SDK asked for them.
    llm.clearRequests();
    const format = { type: 'json_schema' as const, json_schema: { name: 'wetter', schema: { type: 'object', properties: { grad: { type: 'number' } }, required: ['grad'] }, strict: true } };
    expect((await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Wie warm?' }], response_format: format })).choices[0].message.content).toBeTruthy();
    await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Als JSON' }], response_format: { type: 'json_object' } });
    expect(llm.requests({ operation: 'chat.completions' }).map((r) => (r.body as { response_format?: unknown }).response_format)).toEqual([format, { type: 'json_object' }]);

    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toContain('gpt-4o-mini');
    await expect(client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] })).rejects.toMatchObject({ status: 422 });
  });

  it("passes the caller's tools on: the model's calls come back whole and streamed, their results reach it, and the SDK's tool runner works unchanged", async () => {
    const key = (await http.post('/v1/me/api-keys', { name: 'sdk-tools', workspace: 'private' }, token)).body.key;
    const client = new OpenAI({ apiKey: key, baseURL: `${base}/v1`, maxRetries: 0 });
    const tools: OpenAI.Chat.ChatCompletionTool[] = [
      {
        type: 'function',
        function: {
          name: 'wetter',
          description: 'Das Wetter an einem Ort',
          parameters: { type: 'object', properties: { ort: { type: 'string' }, einheit: { type: 'string', enum: ['celsius', 'fahrenheit'] } }, required: ['ort'] },
        },
      },
      { type: 'function', function: { name: 'uhrzeit', parameters: { type: 'object', properties: {} } } },
    ];
    const asked: OpenAI.Chat.ChatCompletionMessageParam[] = [{ role: 'user', content: 'Wie warm ist es in Köln, wetter, und die uhrzeit?' }];
    const callsOf = (m: OpenAI.Chat.ChatCompletionMessage) => m.tool_calls?.map((c) => (c.type === 'function' ? [c.function.name, JSON.parse(c.function.arguments)] : c.type));
    const expected = [['wetter', { ort: 'example', einheit: 'celsius' }], ['uhrzeit', {}]];

    llm.clearRequests();
    const { data: first, response } = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: asked, tools }).withResponse();
    const message = first.choices[0].message;
    expect({ finish: first.choices[0].finish_reason, content: message.content, calls: callsOf(message) }).toEqual({ finish: 'tool_calls', content: null, calls: expected });
    expect(JSON.parse(response.headers.get('x-ally-residency')!).euResident).toBe(true);
    expect((llm.requests({ operation: 'chat.completions' }).at(-1)!.body as { tools: unknown }).tools).toEqual(tools);
    // Billed like any answer, under the id the caller got.
    const usage = await waitFor(
      async () => (await env.sql(`SELECT payload->'data'->>'completionTokens' AS tokens FROM chat.outbox WHERE type = 'chat.completion.recorded' AND payload->'data'->>'messageId' = $1`, [first.id.replace(/^chatcmpl-/, '')]))[0],
      'the usage of the tool calls',
    );
    expect(Number(usage.tokens)).toBe(first.usage!.completion_tokens);

    // The results go back with the history: the deployment gets the assistant's turn as OpenAI takes it, and answers from them.
    const results = message.tool_calls!.map((c, i): OpenAI.Chat.ChatCompletionToolMessageParam => ({ role: 'tool', tool_call_id: c.id, content: ['12 Grad', '14:00'][i] }));
    const second = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [...asked, message, ...results], tools });
    expect(second.choices[0]).toMatchObject({ finish_reason: 'stop', message: { content: 'Tool results: 12 Grad; 14:00' } });
    expect(llm.requests({ operation: 'chat.completions' }).at(-1)!.messages.slice(1)).toEqual([
      { role: 'assistant', content: null, tool_calls: message.tool_calls },
      ...results,
    ]);

    // Streamed: the SDK puts the calls together from the pieces, as it does OpenAI's.
    const stream = client.chat.completions.stream({ model: 'gpt-4o-mini', messages: asked, tools, stream_options: { include_usage: true } });
    const pieces: unknown[] = [];
    stream.on('chunk', (chunk) => chunk.choices[0]?.delta?.tool_calls && pieces.push(...chunk.choices[0].delta.tool_calls));
    const streamed = await stream.finalChatCompletion();
    expect({ finish: streamed.choices[0].finish_reason, calls: callsOf(streamed.choices[0].message) }).toEqual({ finish: 'tool_calls', calls: expected });
    expect(streamed.usage?.completion_tokens).toBeGreaterThan(0);
    expect(pieces[0]).toEqual({ index: 0, id: expect.stringMatching(/^call_/), type: 'function', function: { name: 'wetter', arguments: expect.any(String) } });

    // A stream that stalls in the middle of a call is billed for what was generated and for the whole prompt, the
    // tools' definitions with it (the provider's usage never came).
    const long: OpenAI.Chat.ChatCompletionTool = { type: 'function', function: { name: 'wetter', description: 'Beschreibung '.repeat(400), parameters: { type: 'object', properties: { ort: { type: 'string' } } } } };
    llm.hangNext({ deployment: 'gpt-4o-mini-swc', afterTokens: 2 });
    const stalled = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: asked, tools: [long], stream: true });
    let stalledId = '';
    const brokeOff = await (async () => {
      for await (const chunk of stalled) stalledId = chunk.id;
    })().catch((err) => err);
    expect(brokeOff).toMatchObject({ message: expect.stringMatching(/stopped sending the answer/) });
    const billed = await waitFor(
      async () => (await env.sql(`SELECT payload->'data' AS data FROM chat.outbox WHERE type = 'chat.completion.recorded' AND payload->'data'->>'messageId' = $1`, [stalledId.replace(/^chatcmpl-/, '')]))[0],
      'the usage of the broken-off call',
    );
    expect(billed.data.promptTokens).toBeGreaterThan(400);
    expect(billed.data.completionTokens).toBeGreaterThan(0);

    // One call at a time, or the one tool_choice names.
    const single = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: asked, tools, parallel_tool_calls: false });
    expect(callsOf(single.choices[0].message)).toEqual([expected[0]]);
    const forced = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hallo' }], tools, tool_choice: { type: 'function', function: { name: 'uhrzeit' } } });
    expect(callsOf(forced.choices[0].message)).toEqual([expected[1]]);
    const none = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: asked, tools, tool_choice: 'none' });
    expect(none.choices[0].message).toMatchObject({ content: 'Echo: Wie warm ist es in Köln, wetter, und die uhrzeit?' });

    // The SDK's runner calls the functions and sends their results back until the model answers, streamed and not.
    for (const streaming of [false, true]) {
      const called: unknown[] = [];
      const runnerTools: RunnableToolFunctionWithParse<{ ort: string }>[] = [
        {
          type: 'function',
          function: {
            name: 'wetter',
            description: 'Das Wetter an einem Ort',
            parameters: { type: 'object', properties: { ort: { type: 'string' } } },
            parse: JSON.parse,
            function: (args: { ort: string }) => {
              called.push(args);
              return `Sonnig in ${args.ort}`;
            },
          },
        },
      ];
      const runner = streaming
        ? client.chat.completions.runTools({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Frag wetter' }], tools: runnerTools, stream: true })
        : client.chat.completions.runTools({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Frag wetter' }], tools: runnerTools });
      expect(await runner.finalContent()).toBe('Tool results: Sonnig in example');
      expect(called).toEqual([{ ort: 'example' }]);
    }
  });

  it('passes a speaker\'s name on, gives Azure a developer message as the system message, and refuses an empty message', async () => {
    const key = (await http.post('/v1/me/api-keys', { name: 'sdk-roles', workspace: 'private' }, token)).body.key;
    const client = new OpenAI({ apiKey: key, baseURL: `${base}/v1`, maxRetries: 0 });
    llm.clearRequests();
    const done = await client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [
        { role: 'developer', content: 'Antworte knapp.' },
        { role: 'user', content: 'Wer spricht?', name: 'lotte' },
      ],
    });
    expect(done.choices[0].message.content).toBe('Echo: Wer spricht?');
    // Routed to an Azure deployment whose API version (2024-10-21) refuses `developer`.
    const [sent] = llm.requests({ operation: 'chat.completions' });
    expect({ kind: sent.kind, messages: sent.messages }).toEqual({
      kind: 'azure',
      messages: [
        { role: 'system', content: 'Antworte knapp.' },
        { role: 'user', content: 'Wer spricht?', name: 'lotte' },
      ],
    });

    for (const content of ['', ' \n\u3164', [{ type: 'text', text: '' }]]) {
      const empty = await http.post('/v1/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content }] }, key);
      expect({ status: empty.status, errors: empty.body.errors }).toEqual({ status: 400, errors: [{ field: 'messages.0.content', message: 'must not be empty' }] });
    }
    expect(llm.requests({ operation: 'chat.completions' })).toHaveLength(1);

    // An empty answer (a provider's output filter) sent back with the history, as the SDK's loop does: taken as OpenAI takes it.
    const history = await http.post(
      '/v1/chat/completions',
      { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Erste Frage' }, { role: 'assistant', content: '' }, { role: 'user', content: 'Zweite Frage' }] },
      key,
    );
    expect({ status: history.status, content: history.body.choices?.[0]?.message?.content }).toEqual({ status: 200, content: 'Echo: Zweite Frage' });
  });
});
