import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { OpenAIEmulator } from '@ally/emulators';
import { randomUUID } from 'node:crypto';
import { AssistantsService } from '@ally/chat';
import { ERASED_USER, privacyRpcs, type PrivacyExport } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { confirmEmail, httpClient, lastEvent, waitFor, type TestEnv } from '@ally/testing';
import { startChatWorld, type ChatWorld } from './chat-world.js';
import { expectProblem } from './problem-assertions.js';

const PASSWORD = 'Kraniche über dem Moor';
/** Low here (default 200), above the 20 one test below makes. */
const ASSISTANTS_LIMIT = 25;

/** Specialised assistants: instructions and a default model per workspace, under the same policy as any message. */
describe('specialised assistants', () => {
  let world: ChatWorld;
  let env: TestEnv;
  let llm: OpenAIEmulator;
  let http: ReturnType<typeof httpClient>;
  let owner: { accessToken: string; user: { id: string } };

  /** Confirmed, as an owner must be to invite. */
  const register = async (email: string) => {
    const body = (await http.post('/v1/auth/register', { email, password: PASSWORD, firstName: 'Alma', lastName: 'Berg' })).body;
    await confirmEmail(env, body.user.id);
    return body;
  };
  const lastCompletion = () => llm.requests({ operation: 'chat.completions' }).at(-1)!;

  beforeAll(async () => {
    world = await startChatWorld({ chat: { MAX_ASSISTANTS_PER_WORKSPACE: String(ASSISTANTS_LIMIT) } });
    ({ env, llm, http } = world);
    owner = await register('alma@example.eu');
  });

  afterAll(async () => {
    await world?.close();
  });

  it('answers with its instructions and default model, and refuses a default model no one may use when it is created', async () => {
    const assistant = await http.post('/v1/assistants', { workspace: 'private', name: 'Vertrieb', instructions: 'Antworte knapp, auf Deutsch.', model: 'mistral-small' }, owner.accessToken);
    expect(assistant.status).toBe(201);
    const conversation = (await http.post('/v1/conversations', { workspace: 'private', assistantId: assistant.body.id }, owner.accessToken)).body;
    const answer = await http.post(`/v1/conversations/${conversation.id}/messages`, { content: 'Was kostet das?' }, owner.accessToken);
    expect(answer.status).toBe(201);
    expect(answer.body.model).toBe('mistral-small');
    expect(lastCompletion()).toMatchObject({ endpoint: 'mistral', messages: [{ role: 'system', content: 'Antworte knapp, auf Deutsch.' }, { role: 'user', content: 'Was kostet das?' }] });

    expect((await http.post('/v1/assistants', { workspace: 'private', name: 'X', instructions: 'x', model: 'no-such-model' }, owner.accessToken)).status).toBe(404);
    // Restricted to the EU (the default), this user has no deployment of gpt-4o.
    const outside = await http.post('/v1/assistants', { workspace: 'private', name: 'X', instructions: 'x', model: 'gpt-4o' }, owner.accessToken);
    expect(outside.status).toBe(422);
    expect(outside.body.type).toBe('https://ally.eu/problems/no-eu-deployment');
  });

  it("keeps a private assistant's name and instructions sealed under its creator's key (an organisation's stay text), seals older rows at start, and shreds them with the account", async () => {
    const vera = await register('vera.verschluss@example.eu');
    const created = await http.post('/v1/assistants', { workspace: 'private', name: 'Steuerberaterin', instructions: 'Du kennst meine Steuer-ID 12 345 678 901.' }, vera.accessToken);
    expect(created.status).toBe(201);
    const [row] = await env.sql<{ name: string | null; instructions: string | null; sealed: Buffer | null }>(`SELECT name, instructions, sealed FROM chat.assistants WHERE id = $1`, [created.body.id]);
    expect(row).toMatchObject({ name: null, instructions: null, sealed: expect.any(Buffer) });
    expect(row.sealed!.toString('latin1')).not.toContain('Steuer');
    const listed = (await http.get('/v1/assistants?workspace=private', vera.accessToken)).body.data;
    expect(listed).toEqual([expect.objectContaining({ id: created.body.id, name: 'Steuerberaterin', instructions: 'Du kennst meine Steuer-ID 12 345 678 901.' })]);
    const conversation = (await http.post('/v1/conversations', { workspace: 'private', assistantId: created.body.id }, vera.accessToken)).body.id;
    expect((await http.post(`/v1/conversations/${conversation}/messages`, { content: 'Frist?' }, vera.accessToken)).status).toBe(201);
    expect(lastCompletion().messages[0]).toEqual({ role: 'system', content: 'Du kennst meine Steuer-ID 12 345 678 901.' });

    // A row from before sealing existed is sealed when chat starts (here: the same step, run again).
    const old = randomUUID();
    await env.sql(`INSERT INTO chat.assistants (id, workspace, created_by, name, instructions) VALUES ($1, 'private', $2, 'Alt', 'Alte Anweisung')`, [old, vera.user.id]);
    expect(await world.chat.app.get(AssistantsService).sealPlaintext()).toBe(1);
    expect(await env.sql(`SELECT 1 FROM chat.assistants WHERE workspace = 'private' AND sealed IS NULL`)).toEqual([]);
    expect((await http.get('/v1/assistants?workspace=private', vera.accessToken)).body.data.map((a: { name: string }) => a.name).sort()).toEqual(['Alt', 'Steuerberaterin']);

    // The export opens them; the erasure takes the key, and with it every copy.
    const rpc = new RpcClient(await env.nats(), env.prefix);
    await rpc.connect();
    try {
      const part: PrivacyExport = await rpc.call(privacyRpcs('chat').export, { userId: vera.user.id, scope: 'all', page: 0 });
      const assistants = (part.categories['chat-history'] as { assistants: { name: string; instructions: string; workspace: string }[] }).assistants;
      expect(assistants.map((a) => [a.name, a.instructions]).sort()).toEqual([['Alt', 'Alte Anweisung'], ['Steuerberaterin', 'Du kennst meine Steuer-ID 12 345 678 901.']]);
      expect(assistants.every((a) => !('sealed' in a))).toBe(true);
      await rpc.call(privacyRpcs('chat').erase, { userId: vera.user.id, scope: 'all' });
    } finally {
      await rpc.close();
    }
    expect(await env.sql(`SELECT 1 FROM chat.assistants WHERE created_by = $1`, [vera.user.id])).toEqual([]);
    expect(await env.sql(`SELECT 1 FROM chat.data_keys WHERE user_id = $1`, [vera.user.id])).toEqual([]);
  });

  it("holds MAX_ASSISTANTS_PER_WORKSPACE assistants per workspace: a user's private ones, an organisation's, each counted on its own", async () => {
    const kim = await register('kim.viele@example.eu');
    // As many as the workspace may have, as rows of an earlier release (their text not yet sealed).
    await env.sql(
      `INSERT INTO chat.assistants (id, workspace, created_by, name, instructions) SELECT gen_random_uuid(), 'private', $1, 'Alt ' || n, 'x' FROM generate_series(1, $2) n`,
      [kim.user.id, ASSISTANTS_LIMIT],
    );
    const full = await http.post('/v1/assistants', { workspace: 'private', name: 'Eins zu viel', instructions: 'x' }, kim.accessToken);
    expectProblem(full, 409);
    expect(full.body).toMatchObject({ type: 'https://ally.eu/problems/limit-reached', detail: expect.stringContaining(`This workspace has ${ASSISTANTS_LIMIT} assistants, the most one may`) });
    // Their organisation's workspace, and another user's private one, have room of their own.
    const org = (await http.post('/v1/orgs', { name: 'Viele Helfer GmbH' }, kim.accessToken)).body;
    const team = await http.post('/v1/assistants', { workspace: org.id, name: 'Team', instructions: 'x' }, kim.accessToken);
    expect(team.status).toBe(201);
    expect((await http.post('/v1/assistants', { workspace: 'private', name: 'Meiner', instructions: 'x' }, owner.accessToken)).status).toBe(201);

    // Deleting one makes room; only the organisation's owners and admins may, anyone else hears 404.
    const [old] = await env.sql<{ id: string }>(`SELECT id FROM chat.assistants WHERE created_by = $1 AND workspace = 'private' LIMIT 1`, [kim.user.id]);
    expectProblem(await http.delete(`/v1/assistants/${old.id}`, owner.accessToken), 404);
    expectProblem(await http.delete(`/v1/assistants/${team.body.id}`, owner.accessToken), 404);
    // Written by a former admin since erased (privacy, not running here, is asked about a living writer's legal hold
    // first: e2e/privacy-admin-hardening).
    await env.sql(`INSERT INTO chat.assistants (id, workspace, created_by, name, instructions) SELECT gen_random_uuid(), $1, $3, 'Alt ' || n, 'x' FROM generate_series(2, $2) n`, [
      org.id,
      ASSISTANTS_LIMIT,
      ERASED_USER,
    ]);
    expectProblem(await http.post('/v1/assistants', { workspace: org.id, name: 'Zu viel', instructions: 'x' }, kim.accessToken), 409);
    const [spare] = await env.sql<{ id: string }>(`SELECT id FROM chat.assistants WHERE workspace = $1 AND name = 'Alt 2'`, [org.id]);
    // An owner chat's replica has not heard of yet (their first request) is asked about at identity.
    await env.sql(`DELETE FROM chat.memberships WHERE org_id = $1 AND user_id = $2`, [org.id, kim.user.id]);
    expect((await http.delete(`/v1/assistants/${spare.id}`, kim.accessToken)).status).toBe(204);
    expectProblem(await http.delete(`/v1/assistants/${spare.id}`, kim.accessToken), 404);
    expect((await http.post('/v1/assistants', { workspace: org.id, name: 'Wieder Platz', instructions: 'x' }, kim.accessToken)).status).toBe(201);
    // A conversation that used a deleted assistant goes on without it.
    const [used] = await env.sql<{ id: string }>(`SELECT id FROM chat.assistants WHERE workspace = $1 AND name = 'Alt 3'`, [org.id]);
    const conversation = (await http.post('/v1/conversations', { workspace: org.id, assistantId: used.id }, kim.accessToken)).body;
    expect((await http.delete(`/v1/assistants/${used.id}`, kim.accessToken)).status).toBe(204);
    expect((await http.post(`/v1/conversations/${conversation.id}/messages`, { content: 'Noch da?' }, kim.accessToken)).status).toBe(201);
    expect((await http.get(`/v1/conversations/${conversation.id}`, kim.accessToken)).body.assistantId).toBeNull();
  });

  it("deletes a dissolved organisation's assistants and policy: no one is left to keep them for", async () => {
    const last = await register('letzte.mitglied@example.eu');
    const org = (await http.post('/v1/orgs', { name: 'Auflösung GmbH' }, last.accessToken)).body;
    const assistant = await http.post('/v1/assistants', { workspace: org.id, name: 'Abwickler', instructions: 'Antworte knapp.' }, last.accessToken);
    expect(assistant.status).toBe(201);
    expect(await env.sql(`SELECT 1 FROM chat.org_policies WHERE org_id = $1`, [org.id])).toHaveLength(1);
    // Its last member's account goes (as privacy's erasure asks identity): the organisation is dissolved.
    const rpc = new RpcClient(await env.nats(), env.prefix);
    await rpc.connect();
    try {
      await rpc.call(privacyRpcs('identity').erase, { userId: last.user.id, scope: 'all' });
    } finally {
      await rpc.close();
    }
    await lastEvent(env, 'identity.organization.dissolved', (e: { data: { orgId: string } }) => e.data.orgId === org.id);
    await waitFor(async () => ((await env.sql(`SELECT 1 FROM chat.assistants WHERE workspace = $1`, [org.id])).length === 0 ? true : undefined), 'the assistants to go');
    expect(await env.sql(`SELECT 1 FROM chat.org_policies WHERE org_id = $1`, [org.id])).toEqual([]);
  });

  it('lists assistants with long instructions in pages that fit one reply, and refuses names that hide or reverse text', async () => {
    const lena = await register('lena.lang@example.eu');
    const long = '€'.repeat(20_000); // 60 kB each: 20 of them do not fit one NATS message
    for (let i = 0; i < 20; i++) expect((await http.post('/v1/assistants', { workspace: 'private', name: `A${i}`, instructions: long }, lena.accessToken)).status).toBe(201);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { status: number; body: { data: { name: string; instructions: string }[]; nextCursor: string | null } } = await http.get(`/v1/assistants?workspace=private&limit=100${cursor ? `&cursor=${cursor}` : ''}`, lena.accessToken);
      expect(page.status).toBe(200);
      expect(page.body.data.length).toBeGreaterThan(0);
      expect(page.body.data.every((a) => a.instructions === long)).toBe(true);
      seen.push(...page.body.data.map((a) => a.name));
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(seen.sort()).toEqual(Array.from({ length: 20 }, (_, i) => `A${i}`).sort());

    for (const name of ['\u202Etxt.exe', '\u200B', 'a\u2066b']) {
      const res = await http.post('/v1/assistants', { workspace: 'private', name, instructions: 'x' }, lena.accessToken);
      expectProblem(res, 400);
      expect(res.body.errors.map((e: { field: string }) => e.field)).toContain('name');
    }
  });

  it("lets an organisation's admins create its assistants for every member, under the organisation's policy, each member under their own restriction", async () => {
    const org = (await http.post('/v1/orgs', { name: 'Berg Beratung GmbH' }, owner.accessToken)).body;
    expect((await http.patch(`/v1/orgs/${org.id}/policy`, { euOnly: false }, owner.accessToken)).status).toBe(200);
    // The organisation allows gpt-4o; the owner's own EU restriction does not decide for the others.
    const create = () => http.post('/v1/assistants', { workspace: org.id, name: 'Recherche', instructions: 'Nenne Quellen.', model: 'gpt-4o' }, owner.accessToken);
    const assistant = await waitFor(async () => ((await create()).body.id as string | undefined), 'the policy change to reach chat');

    const invite = await http.post(`/v1/orgs/${org.id}/invitations`, { email: 'ole@example.eu', role: 'member' }, owner.accessToken);
    const ole = await register('ole@example.eu');
    const invitation = await lastEvent<{ invitationId: string; token: string }>(env, 'identity.invitation.created', (e) => e.data.invitationId === invite.body.id);
    expect((await http.post('/v1/invitations/accept', { token: invitation.data.token }, ole.accessToken)).status).toBe(200);
    const conversation = await waitFor(async () => (await http.post('/v1/conversations', { workspace: org.id, assistantId: assistant }, ole.accessToken)).body.id as string | undefined, 'the membership to reach chat');

    // Ole is restricted to the EU: the assistant's non-EU default gives way to the default model, in the EU.
    const answer = await http.post(`/v1/conversations/${conversation}/messages`, { content: 'Quellen zu Mooren?' }, ole.accessToken);
    expect(answer.status).toBe(201);
    expect(answer.body).toMatchObject({ model: 'gpt-4o-mini', residency: { euResident: true } });
    expect(lastCompletion().messages[0]).toEqual({ role: 'system', content: 'Nenne Quellen.' });

    expect((await http.post('/v1/assistants', { workspace: org.id, name: 'Y', instructions: 'y' }, ole.accessToken)).status).toBe(403);
    expect((await http.get(`/v1/assistants?workspace=${org.id}`, ole.accessToken)).body.data.map((a: { id: string }) => a.id)).toEqual([assistant]);
    // The organisation's, for every member: readable text, not sealed under the creator's key.
    expect(await env.sql(`SELECT name, sealed FROM chat.assistants WHERE id = $1`, [assistant])).toEqual([{ name: 'Recherche', sealed: null }]);

    // A member may not change the policy, and hears that, not which models the catalog has.
    expectProblem(await http.patch(`/v1/orgs/${org.id}/policy`, { allowedModels: ['no-such-model'] }, ole.accessToken), 403);
    expect((await http.patch(`/v1/orgs/${org.id}/policy`, { allowedModels: ['mistral-small'] }, owner.accessToken)).status).toBe(200);
    await waitFor(async () => ((await http.post('/v1/assistants', { workspace: org.id, name: 'Z', instructions: 'z', model: 'gpt-4o-mini' }, owner.accessToken)).status === 422 ? true : undefined), 'the allowed models to reach chat');
    // A message that names no model gets the one the organisation allows, not a refusal of the platform's default.
    const allowedOnly = await http.post(`/v1/conversations/${conversation}/messages`, { content: 'Und jetzt?' }, ole.accessToken);
    expect(allowedOnly.status).toBe(201);
    expect(allowedOnly.body).toMatchObject({ model: 'mistral-small', residency: { deployment: 'mistral-small@hetzner-fsn1', euResident: true } });
    expectProblem(await http.post(`/v1/conversations/${conversation}/messages`, { content: 'Und jetzt?', model: 'gpt-4o-mini' }, ole.accessToken), 422);
  });
});
