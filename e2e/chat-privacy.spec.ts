import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mergeExportPages, privacyRpcs, type PrivacyExport } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { httpClient, waitFor, type TestEnv } from '@ally/testing';
import { startChatWorld, type ChatWorld } from './chat-world.js';

const PASSWORD = 'Nebel über der Elbe am Morgen';
const MAX_PAYLOAD = 1024 * 1024; // NATS's default: what a page must stay under
const NIL = '00000000-0000-0000-0000-000000000000';

type Message = { id: string; conversationId: string; role: string; content: string };
type History = { conversations: { id: string; title: string | null }[]; messages: Message[]; assistants: { id: string; instructions: string; workspace: string }[] };

/** chat's data-subject RPCs, as privacy's saga calls them: export page after page. */
describe("chat's part of data-subject requests", () => {
  let world: ChatWorld;
  let env: TestEnv;
  let http: ReturnType<typeof httpClient>;
  let rpc: RpcClient;

  const register = async (email: string, firstName: string) => {
    const r = await http.post('/v1/auth/register', { email, password: PASSWORD, firstName, lastName: 'Privat' });
    expect(r.status).toBe(201);
    return r.body as { user: { id: string }; accessToken: string };
  };

  /** Every page of an export, each with the bytes of its answer. */
  const exportAll = async (userId: string, scope: string) => {
    const pages: PrivacyExport[] = [];
    const sizes: number[] = [];
    for (let page: number | string | undefined = 0; page !== undefined; ) {
      const answer: PrivacyExport = await rpc.call(privacyRpcs('chat').export, { userId, scope: scope as 'all', page }, { timeoutMs: 15_000 });
      sizes.push(Buffer.byteLength(JSON.stringify(answer)));
      pages.push(answer);
      page = answer.nextPage;
      expect(pages.length).toBeLessThan(200);
    }
    // (mergeExportPages extends the first page's lists in place: once only.)
    const merged = mergeExportPages(pages);
    return { pages, sizes, history: merged.categories['chat-history'] as History, merged };
  };

  beforeAll(async () => {
    world = await startChatWorld();
    ({ env, http } = world);
    rpc = new RpcClient(await env.nats(), env.prefix);
    await rpc.connect();
  });

  afterAll(async () => {
    await rpc?.close();
    await world?.close();
  });

  it('exports large messages, many conversations and long assistant instructions completely, in pages that each fit a NATS message', async () => {
    const ute = await register('ute.gross@example.eu', 'Ute');
    const userId = ute.user.id;
    // 100,000 characters, about twice that as JSON (quotes, backslashes, umlauts, a control character).
    const big = 'Zeile "Ä€" \\ \u0001\n'.repeat(7143).slice(0, 100_000);
    // The worst case: every character escaped to six bytes of JSON, ~600 KB for one message.
    const worst = 'X' + '\u0001'.repeat(99_999);
    const stored = new Map<string, string>(); // conversation:role -> content
    for (const content of [big, worst]) {
      const id = (await http.post('/v1/conversations', { workspace: 'private', title: 'Große Texte' }, ute.accessToken)).body.id as string;
      const answer = await http.post(`/v1/conversations/${id}/messages`, { content }, ute.accessToken);
      expect(answer.status).toBe(201);
      stored.set(`${id}:user`, content);
      stored.set(`${id}:assistant`, answer.body.content);
    }
    const [a] = [...stored.keys()].map((k) => k.split(':')[0]);

    // Quick bulk: the sealed rows copied (same key, same content), each a millisecond apart.
    await env.sql(
      `INSERT INTO chat.messages (id, conversation_id, user_id, role, content_enc, model, prompt_tokens, completion_tokens, residency, status, created_at)
       SELECT gen_random_uuid(), conversation_id, user_id, role, content_enc, model, prompt_tokens, completion_tokens, residency, status, created_at + (g * interval '2 ms')
         FROM chat.messages, generate_series(1, 15) g WHERE conversation_id = $1`,
      [a],
    );
    await env.sql(
      `INSERT INTO chat.conversations (id, user_id, workspace, title_enc, created_at, updated_at)
       SELECT gen_random_uuid(), user_id, workspace, title_enc, created_at - (g * interval '1 ms'), updated_at
         FROM chat.conversations, generate_series(1, 1500) g WHERE id = $1`,
      [a],
    );
    const instructions = 'Anweisung\n' + '\u0001'.repeat(19_990);
    const assistant = await http.post('/v1/assistants', { workspace: 'private', name: 'Lang', instructions }, ute.accessToken);
    expect(assistant.status).toBe(201);
    await env.sql(
      `INSERT INTO chat.assistants (id, workspace, created_by, name, instructions, sealed, model, created_at)
       SELECT gen_random_uuid(), workspace, created_by, name || g, instructions, sealed, model, created_at + (g * interval '1 ms')
         FROM chat.assistants, generate_series(1, 11) g WHERE id = $1`,
      [assistant.body.id],
    );

    const messageIds = (await env.sql<{ id: string }>(`SELECT id FROM chat.messages WHERE user_id = $1`, [userId])).map((r) => r.id).sort();
    const conversationIds = (await env.sql<{ id: string }>(`SELECT id FROM chat.conversations WHERE user_id = $1`, [userId])).map((r) => r.id).sort();
    const assistantIds = (await env.sql<{ id: string }>(`SELECT id FROM chat.assistants WHERE created_by = $1`, [userId])).map((r) => r.id).sort();
    expect(messageIds).toHaveLength(34);
    expect(conversationIds).toHaveLength(1502);
    expect(assistantIds).toHaveLength(12);

    for (const scope of ['private', 'all']) {
      const { pages, sizes, history, merged } = await exportAll(userId, scope);
      // ~3.4 MB of messages and ~1.4 MB of instructions: many pages, none near the limit.
      expect(pages.length).toBeGreaterThanOrEqual(8);
      for (const size of sizes) expect(size).toBeLessThan(MAX_PAYLOAD - 64 * 1024);
      // Every message once, decrypted.
      expect(history.messages.map((m) => m.id).sort()).toEqual(messageIds);
      for (const m of history.messages) expect(m.content).toBe(stored.get(`${m.conversationId}:${m.role}`));
      expect(history.conversations.map((c) => c.id).sort()).toEqual(conversationIds);
      expect(history.conversations.filter((c) => c.title === 'Große Texte')).toHaveLength(1502);
      expect(history.assistants.map((x) => x.id).sort()).toEqual(assistantIds);
      expect(history.assistants.every((x) => x.instructions === instructions)).toBe(true);
      expect(merged.categories['policy-replica']).toEqual({ restrictToEu: true, memberships: [], restrictions: [] });
      // Each page holds the three lists; later ones continue them.
      for (const page of pages) expect(Object.keys(page.categories['chat-history'] as object).sort()).toEqual(['assistants', 'conversations', 'messages']);
    }
    // Nothing of an organisation's workspace in it.
    expect((await exportAll(userId, '8d3b6c1e-52a4-4c1f-9a57-0c1f3e1d2b44')).history).toEqual({ conversations: [], messages: [], assistants: [] });
    // A page chat never gave out (such as the page numbers of before) is refused: the caller starts again.
    await expect(rpc.call(privacyRpcs('chat').export, { userId, scope: 'all', page: 2 })).rejects.toMatchObject({ status: 400 });
  });

  it('goes on behind the page it gave out, however the rest changes meanwhile', async () => {
    const kai = await register('kai.wechsel@example.eu', 'Kai');
    const id = (await http.post('/v1/conversations', { workspace: 'private', title: 'Wechsel' }, kai.accessToken)).body.id as string;
    expect((await http.post(`/v1/conversations/${id}/messages`, { content: 'x'.repeat(100_000) }, kai.accessToken)).status).toBe(201);
    await env.sql(
      `INSERT INTO chat.messages (id, conversation_id, user_id, role, content_enc, status, created_at)
       SELECT gen_random_uuid(), conversation_id, user_id, role, content_enc, status, created_at + (g * interval '2 ms')
         FROM chat.messages, generate_series(1, 9) g WHERE conversation_id = $1`,
      [id],
    );
    const first: PrivacyExport = await rpc.call(privacyRpcs('chat').export, { userId: kai.user.id, scope: 'all', page: 0 });
    const seen = (first.categories['chat-history'] as History).messages.map((m) => m.id);
    expect(first.nextPage).toEqual(expect.any(String));
    // The earliest messages not yet exported go; the rest comes, none twice and none left out.
    const [gone] = await env.sql<{ id: string }>(
      `DELETE FROM chat.messages WHERE id = (SELECT id FROM chat.messages WHERE conversation_id = $1 AND NOT (id = ANY($2::uuid[])) ORDER BY created_at, id LIMIT 1) RETURNING id`,
      [id, seen],
    );
    const rest: string[] = [];
    for (let page: number | string | undefined = first.nextPage; page !== undefined; ) {
      const answer: PrivacyExport = await rpc.call(privacyRpcs('chat').export, { userId: kai.user.id, scope: 'all', page });
      rest.push(...(answer.categories['chat-history'] as History).messages.map((m) => m.id));
      page = answer.nextPage;
    }
    const all = (await env.sql<{ id: string }>(`SELECT id FROM chat.messages WHERE conversation_id = $1`, [id])).map((r) => r.id);
    expect([...seen, ...rest].sort()).toEqual(all.sort());
    expect(rest).not.toContain(gone.id);
  });

  it('erases a very long history in slices when asked to: the first call shreds the key and stops chat for them, each deletes at most 20,000 messages, the counts add up', async () => {
    const nora = await register('nora.lang@example.eu', 'Nora');
    const userId = nora.user.id;
    const id = (await http.post('/v1/conversations', { workspace: 'private', title: 'Jahre' }, nora.accessToken)).body.id as string;
    expect((await http.post(`/v1/conversations/${id}/messages`, { content: 'Hallo' }, nora.accessToken)).status).toBe(201);
    // Years of chat: 45,000 more messages (sealed bytes the key no longer opens once it is gone).
    await env.sql(
      `INSERT INTO chat.messages (id, conversation_id, user_id, role, content_enc, status, created_at)
       SELECT gen_random_uuid(), $1, $2, CASE WHEN i % 2 = 0 THEN 'user' ELSE 'assistant' END, decode(md5(i::text), 'hex'), 'complete', now() - i * interval '1 second'
         FROM generate_series(1, 45000) AS i`,
      [id, userId],
    );
    const count = async () => (await env.sql<{ n: number }>(`SELECT count(*)::int AS n FROM chat.messages WHERE conversation_id = $1`, [id]))[0].n;

    const first = await rpc.call(privacyRpcs('chat').erase, { userId, scope: 'all', slices: true }, { timeoutMs: 30_000 });
    expect(first).toMatchObject({ more: true, affected: { 'chat-history': 20_000, 'data-keys': 1 } });
    expect(await count()).toBe(25_002);
    // What is left can no longer be read, and chat refuses her from the first slice on.
    expect(await env.sql(`SELECT 1 FROM chat.data_keys WHERE user_id = $1`, [userId])).toEqual([]);
    expect((await http.get(`/v1/conversations/${id}`, nora.accessToken)).status).toBeGreaterThanOrEqual(400);

    const answers = [first];
    while (answers.at(-1)!.more) answers.push(await rpc.call(privacyRpcs('chat').erase, { userId, scope: 'all', slices: true }, { timeoutMs: 30_000 }));
    expect(answers).toHaveLength(3);
    // 45,002 messages and the conversation; the key once.
    expect(answers.reduce((n, a) => n + a.affected['chat-history'], 0)).toBe(45_003);
    expect(answers.reduce((n, a) => n + a.affected['data-keys'], 0)).toBe(1);
    expect(await count()).toBe(0);
    expect(await env.sql(`SELECT 1 FROM chat.conversations WHERE user_id = $1`, [userId])).toEqual([]);
  });

  it('erases private assistants with the private workspace, and keeps an organisation’s assistants without the person', async () => {
    const olga = await register('olga.loeschen@example.eu', 'Olga');
    const userId = olga.user.id;
    const orgs = [(await http.post('/v1/orgs', { name: 'Löschmann GmbH' }, olga.accessToken)).body.id as string, (await http.post('/v1/orgs', { name: 'Tilgung KG' }, olga.accessToken)).body.id as string];
    const privateAssistants: string[] = [];
    for (const name of ['Tagebuch', 'Arztbriefe']) {
      const r = await http.post('/v1/assistants', { workspace: 'private', name, instructions: `Ich bin Olga, schreib meine ${name}.` }, olga.accessToken);
      expect(r.status).toBe(201);
      privateAssistants.push(r.body.id);
    }
    const orgAssistants: string[] = [];
    for (const org of orgs) {
      orgAssistants.push(
        await waitFor(async () => (await http.post('/v1/assistants', { workspace: org, name: 'Angebote', instructions: 'Schreibe Angebote.' }, olga.accessToken)).body.id as string | undefined, 'the membership to reach chat'),
      );
    }
    const talk = async (workspace: string) => {
      const id = (await http.post('/v1/conversations', { workspace, title: 'Notiz' }, olga.accessToken)).body.id as string;
      expect((await http.post(`/v1/conversations/${id}/messages`, { content: 'Hallo' }, olga.accessToken)).status).toBe(201);
    };
    await talk('private');
    for (const org of orgs) await talk(org);
    const creators = async () => Object.fromEntries((await env.sql<{ id: string; created_by: string }>(`SELECT id, created_by FROM chat.assistants WHERE id = ANY($1::uuid[])`, [[...privateAssistants, ...orgAssistants]])).map((r) => [r.id, r.created_by]));

    // The export of the private workspace lists the private assistants: its erasure takes them.
    const before = await exportAll(userId, 'private');
    expect(before.history.assistants.map((x) => x.id).sort()).toEqual([...privateAssistants].sort());
    const erasePrivate = await rpc.call(privacyRpcs('chat').erase, { userId, scope: 'private' });
    // A conversation, its two messages and two assistants.
    expect(erasePrivate.affected['chat-history']).toBe(5);
    expect(await creators()).toEqual({ [orgAssistants[0]]: userId, [orgAssistants[1]]: userId });
    expect((await exportAll(userId, 'private')).history).toEqual({ conversations: [], messages: [], assistants: [] });
    expect((await http.get('/v1/assistants?workspace=private', olga.accessToken)).body.data).toEqual([]);

    // One organisation's workspace: its assistant stays the organisation's, no longer linked to her.
    const eraseOrg = await rpc.call(privacyRpcs('chat').erase, { userId, scope: orgs[0] });
    expect(eraseOrg.affected['chat-history']).toBe(4);
    expect(await creators()).toEqual({ [orgAssistants[0]]: NIL, [orgAssistants[1]]: userId });
    expect((await http.get(`/v1/assistants?workspace=${orgs[0]}`, olga.accessToken)).body.data.map((x: { id: string }) => x.id)).toEqual([orgAssistants[0]]);

    // The whole account: the other organisation's assistant too; nothing in chat names her any more.
    const eraseAll = await rpc.call(privacyRpcs('chat').erase, { userId, scope: 'all' });
    expect(eraseAll.affected).toMatchObject({ 'chat-history': 4, 'data-keys': 1 });
    expect(await creators()).toEqual({ [orgAssistants[0]]: NIL, [orgAssistants[1]]: NIL });
    expect(await env.sql(`SELECT name FROM chat.assistants WHERE id = ANY($1::uuid[]) ORDER BY name`, [orgAssistants])).toEqual([{ name: 'Angebote' }, { name: 'Angebote' }]);
    expect(JSON.stringify(await env.sql(`SELECT * FROM chat.assistants`))).not.toContain(userId);
    expect((await exportAll(userId, 'all')).history).toEqual({ conversations: [], messages: [], assistants: [] });
  });
});
