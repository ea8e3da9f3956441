import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { httpClient, waitFor, type TestEnv } from '@ally/testing';
import { startChatWorld, type ChatWorld } from './chat-world.js';
import { expectProblem } from './problem-assertions.js';

const PASSWORD = 'Abendrot über den Dächern';
const ASCII = /^[\x20-\x7e]+$/;

/** A receipt in `x-ally-residency` is printable ASCII and parses back; null when the header is missing. */
function residencyOf(res: Response): unknown {
  const header = res.headers.get('x-ally-residency');
  if (header === null) return null;
  expect(header).toMatch(ASCII);
  return JSON.parse(header);
}

/** The `data` of the SSE event `event` (the last one), or of the last `data:` line for the OpenAI stream. */
function sseData(text: string, event?: string): any {
  const blocks = text.split('\n\n').filter((b) => (event ? b.startsWith(`event: ${event}\n`) : b.startsWith('data: {')));
  return JSON.parse(/^data: (.*)$/m.exec(blocks.at(-1)!)![1]);
}

/**
 * The residency receipt repeats the organisation's policy, which its owner
 * writes; the header that carries it must stay a legal header whatever the
 * policy holds, or the answer never comes.
 */
describe('x-ally-residency', () => {
  let world: ChatWorld;
  let env: TestEnv;
  let base: string;
  let http: ReturnType<typeof httpClient>;
  let token: string;
  let orgId: string;
  let apiKey: string;

  beforeAll(async () => {
    world = await startChatWorld();
    ({ env, base, http } = world);
    token = (await http.post('/v1/auth/register', { email: 'marta@example.eu', password: PASSWORD, firstName: 'Marta', lastName: 'Dvořák' })).body.accessToken;
    orgId = (await http.post('/v1/orgs', { name: 'Dvořák Statik GmbH' }, token)).body.id;
    apiKey = (await http.post('/v1/me/api-keys', { name: 'sdk', workspace: orgId }, token)).body.key;
  });

  afterAll(async () => {
    await world?.close();
  });

  const post = (path: string, body: unknown, headers: Record<string, string> = {}, bearer = token) =>
    fetch(`${base}${path}`, { method: 'POST', headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json', ...headers }, body: JSON.stringify(body), signal: AbortSignal.timeout(10_000) });

  /** The receipt of each way to get an answer, from its header, checked against the one in the body where there is one. */
  async function receipts(): Promise<unknown[]> {
    const conversationId = (await http.post('/v1/conversations', { workspace: orgId }, token)).body.id;
    const plain = await post(`/v1/conversations/${conversationId}/messages`, { content: 'Hallo' });
    expect(plain.status).toBe(201);
    const plainReceipt = residencyOf(plain);
    expect(plainReceipt).toEqual(((await plain.json()) as { residency: unknown }).residency);

    const streamed = await post(`/v1/conversations/${conversationId}/messages`, { content: 'Hallo' }, { accept: 'text/event-stream' });
    expect(streamed.status).toBe(200);
    const streamedReceipt = residencyOf(streamed);
    const done = sseData(await streamed.text(), 'done');
    expect(streamedReceipt).toEqual(done.residency);

    const compatBody = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hallo' }] };
    const compat = await post('/v1/chat/completions', compatBody, {}, apiKey);
    expect(compat.status).toBe(200);
    expect(await compat.json()).toMatchObject({ object: 'chat.completion' });
    const compatStreamed = await post('/v1/chat/completions', { ...compatBody, stream: true }, {}, apiKey);
    expect(compatStreamed.status).toBe(200);
    expect(sseData(await compatStreamed.text()).object).toBe('chat.completion.chunk');
    return [plainReceipt, streamedReceipt, residencyOf(compat), residencyOf(compatStreamed)];
  }

  it('refuses allowed models that are not model ids, or not in the catalog, with a 400 naming the field, and keeps the policy', async () => {
    for (const model of ['Mistral – klein', 'Modèle', 'mistral small', 'gpt🙂', 'a\u007fb']) {
      expectProblem(await http.patch(`/v1/orgs/${orgId}/policy`, { allowedModels: ['gpt-4o-mini', model] }, token), 400, ['allowedModels.1']);
    }
    expect((await http.get(`/v1/orgs/${orgId}`, token)).body.policy.allowedModels).toBeNull();
    // Model ids, but not in chat's catalog: they would allow nothing, and so block every business conversation.
    const unknown = await http.patch(`/v1/orgs/${orgId}/policy`, { allowedModels: ['gpt-4o-mini', 'gpt-4o-mini@azure-swedencentral', 'org/model:v1.2_b'] }, token);
    expectProblem(unknown, 400, ['allowedModels']);
    expect(unknown.body.detail).toContain('"gpt-4o-mini@azure-swedencentral", "org/model:v1.2_b"');
    expect(unknown.body.detail).toContain('mistral-small');
    expect((await http.get(`/v1/orgs/${orgId}`, token)).body.policy.allowedModels).toBeNull();
    const ids = ['gpt-4o-mini', 'mistral-small'];
    expect((await http.patch(`/v1/orgs/${orgId}/policy`, { allowedModels: ids }, token)).body.allowedModels).toEqual(ids);
  });

  it('carries a receipt that parses back on plain and streamed answers, here and on the OpenAI-compatible endpoint', async () => {
    const allowedModels = ['gpt-4o-mini', 'mistral-small'];
    expect((await http.patch(`/v1/orgs/${orgId}/policy`, { allowedModels }, token)).status).toBe(200);
    await waitFor(async () => (await env.sql(`SELECT 1 FROM chat.org_policies WHERE org_id = $1 AND allowed_models = $2`, [orgId, allowedModels])).length > 0, 'chat sees the policy');
    for (const receipt of await receipts()) {
      expect(receipt).toMatchObject({ provider: 'azure', euResident: true, policy: { allowedModels, workspace: orgId } });
    }
  });

  it('writes a receipt holding non-ASCII (a policy stored before models were checked) as ASCII that parses back', async () => {
    const allowedModels = ['gpt-4o-mini', 'Mistral – klein', 'Modèle', 'モデル🙂'];
    await env.sql(`UPDATE identity.organizations SET allowed_models = $2 WHERE id = $1`, [orgId, allowedModels]);
    // Dated ahead, so the organisation's own events, however late, do not replace it in chat's replica.
    await env.sql(
      `INSERT INTO chat.org_policies (org_id, allowed_models, updated_at) VALUES ($1, $2, now() + interval '1 day')
       ON CONFLICT (org_id) DO UPDATE SET allowed_models = EXCLUDED.allowed_models, updated_at = EXCLUDED.updated_at`,
      [orgId, allowedModels],
    );
    for (const receipt of await receipts()) {
      expect(receipt).toMatchObject({ provider: 'azure', euResident: true, policy: { allowedModels, workspace: orgId } });
    }
  });
});
