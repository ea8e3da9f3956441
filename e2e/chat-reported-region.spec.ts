import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { chatService } from '@ally/chat';
import { startOpenAIEmulator, type OpenAIEmulator } from '@ally/emulators';
import { gatewayService } from '@ally/gateway';
import { identityService } from '@ally/identity';
import { createTestEnv, httpClient, type TestEnv } from '@ally/testing';
import { startChatWorld, type ChatWorld } from './chat-world.js';
import { chatEnv } from './service-env.js';

const PASSWORD = 'Nebel über dem Moor';
const SWEDEN = 'gpt-4o-mini@azure-swedencentral';

/**
 * The receipt says what happened, not what the catalog promised. Here the
 * Azure resource behind the Sweden Central deployment answers from East US
 * (`x-ms-region`), as a misconfigured resource would.
 */
describe('a deployment configured as EU that reports a region outside the EU', () => {
  let world: ChatWorld;

  beforeAll(async () => {
    world = await startChatWorld({ llm: { azureRegions: { 'gpt-4o-mini-swc': 'eastus' } } });
  });

  afterAll(async () => {
    await world?.close();
  });

  const register = async (email: string) =>
    (await world.http.post('/v1/auth/register', { email, password: PASSWORD, firstName: 'Nele', lastName: 'Moor' })).body.accessToken as string;
  const conversation = async (token: string) => (await world.http.post('/v1/conversations', { workspace: 'private' }, token)).body.id as string;

  it('is not used for a user restricted to the EU: the next EU deployment answers, streamed or not, and the receipt says where the prompt went', async () => {
    const token = await register('eu-only@example.eu');
    const id = await conversation(token);
    world.llm.clearRequests();
    const plain = await world.http.post(`/v1/conversations/${id}/messages`, { content: '#tokens=5 Hallo' }, token);
    expect(plain.status).toBe(201);
    // The prompt did reach the first (nothing can call that back); its answer was not used, and the receipt does not hide it.
    expect(plain.body.residency).toMatchObject({
      deployment: 'gpt-4o-mini@azure-datazone-eu',
      reportedRegion: 'Sweden Central',
      euResident: false,
      alsoSentTo: [{ deployment: SWEDEN, region: 'swedencentral', reportedRegion: 'East US' }],
    });
    expect(world.llm.requests({ kind: 'azure' }).map((r) => [r.endpoint, r.region])).toEqual([['gpt-4o-mini-swc', 'East US'], ['gpt-4o-mini-dzeu', 'Sweden Central']]);
    world.llm.clearRequests();

    const streamed = await fetch(`${world.base}/v1/conversations/${id}/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream', 'content-type': 'application/json' },
      body: JSON.stringify({ content: '#tokens=5 Noch einmal' }),
    });
    const text = await streamed.text();
    const done = JSON.parse(/event: done\ndata: (.*)\n/.exec(text)![1]);
    // Once it said so, it is kept from EU-only prompts: this one stayed in the EU.
    expect(done.residency).toMatchObject({ deployment: 'gpt-4o-mini@azure-datazone-eu', euResident: true });
    expect(done.residency.alsoSentTo).toBeUndefined();
    expect(JSON.parse(streamed.headers.get('x-ally-residency')!)).toMatchObject({ deployment: 'gpt-4o-mini@azure-datazone-eu' });
    expect(text).not.toContain('event: error');
    // Once it said so, EU-only prompts are not sent to it again (each one would leave the EU before its answer is dropped).
    expect(world.llm.requests({ kind: 'azure' }).map((r) => r.endpoint)).toEqual(['gpt-4o-mini-dzeu']);
  });

  it('ranks it after the EU deployments for a user who allows models outside the EU, and redacts what still goes to it', async () => {
    const token = await register('anywhere@example.eu');
    expect((await world.http.patch('/v1/me/settings', { restrictToEu: false }, token)).status).toBe(200);
    const id = await conversation(token);
    // Its first answer (unless someone found out before) says where it came from; from then on it ranks as outside the EU.
    const first = await world.http.post(`/v1/conversations/${id}/messages`, { content: '#tokens=5 Hallo' }, token);
    expect(first.status).toBe(201);
    if (first.body.residency.deployment === SWEDEN) expect(first.body.residency).toMatchObject({ reportedRegion: 'East US', euResident: false });
    const mail = 'Schreib an anna.berg@example.eu';
    const inEu = await world.http.post(`/v1/conversations/${id}/messages`, { content: mail }, token);
    expect(inEu.body.residency).toMatchObject({ deployment: 'gpt-4o-mini@azure-datazone-eu', euResident: true });

    // When the EU deployments fail it serves, and what it gets has no personal data, the history's included.
    world.llm.failNext({ status: 500, endpoint: 'gpt-4o-mini-dzeu' });
    world.llm.failNext({ status: 500, endpoint: 'openai-eu' });
    world.llm.clearRequests();
    const answer = await world.http.post(`/v1/conversations/${id}/messages`, { content: mail }, token);
    expect(answer.status).toBe(201);
    expect(answer.body.residency).toMatchObject({ deployment: SWEDEN, region: 'swedencentral', reportedRegion: 'East US', euResident: false });
    const [sent] = world.llm.requests({ endpoint: 'gpt-4o-mini-swc' });
    expect(JSON.stringify(sent.messages)).not.toContain('anna.berg@example.eu');
    expect(JSON.stringify(sent.messages)).toContain('[email]');
    // Billing's ledger hears the same.
    const [usage] = await world.env.sql<{ eu: boolean }>(`SELECT (payload->'data'->>'euResident')::boolean AS eu FROM chat.outbox WHERE payload->'data'->>'messageId' = $1`, [answer.body.id]);
    expect(usage).toEqual({ eu: false });
  });
});

/** The same resource, refusing: its error answer says where the prompt went just as an answer would. */
describe('a deployment configured as EU whose error answer reports a region outside the EU', () => {
  let world: ChatWorld;

  beforeAll(async () => {
    world = await startChatWorld({ llm: { azureRegions: { 'gpt-4o-mini-swc': 'eastus' } } });
  });

  afterAll(async () => {
    await world?.close();
  });

  it('puts it on the receipt of the fallback that answered, streamed too, and keeps it from EU-only callers afterwards', async () => {
    const token = (await world.http.post('/v1/auth/register', { email: 'eu-error@example.eu', password: PASSWORD, firstName: 'Nele', lastName: 'Moor' })).body.accessToken as string;
    const id = (await world.http.post('/v1/conversations', { workspace: 'private' }, token)).body.id as string;
    world.llm.failNext({ status: 500, deployment: 'gpt-4o-mini-swc' });
    const plain = await world.http.post(`/v1/conversations/${id}/messages`, { content: '#tokens=5 Hallo' }, token);
    expect(plain.status).toBe(201);
    expect(world.llm.requests({ kind: 'azure' }).map((r) => [r.endpoint, r.region, r.status])).toEqual([
      ['gpt-4o-mini-swc', 'East US', 500],
      ['gpt-4o-mini-dzeu', 'Sweden Central', 200],
    ]);
    expect(plain.body.residency).toMatchObject({
      deployment: 'gpt-4o-mini@azure-datazone-eu',
      euResident: false,
      alsoSentTo: [{ deployment: SWEDEN, region: 'swedencentral', reportedRegion: 'East US' }],
    });

    // Kept from EU-only callers now: the next prompts, streamed or not, never reach it.
    world.llm.clearRequests();
    expect((await world.http.post(`/v1/conversations/${id}/messages`, { content: '#tokens=5 Noch einmal' }, token)).body.residency).toMatchObject({ euResident: true });
    const streamed = await fetch(`${world.base}/v1/conversations/${id}/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream', 'content-type': 'application/json' },
      body: JSON.stringify({ content: '#tokens=5 Und gestreamt' }),
    });
    const done = JSON.parse(/event: done\ndata: (.*)\n/.exec(await streamed.text())![1]);
    expect(done.residency).toMatchObject({ deployment: 'gpt-4o-mini@azure-datazone-eu', euResident: true });
    expect(world.llm.requests({ kind: 'azure' }).map((r) => r.endpoint)).toEqual(['gpt-4o-mini-dzeu', 'gpt-4o-mini-dzeu']);
  });
});

/** Two chat replicas: what one learnt about the resource, the other knows too. */
describe('a deployment reporting a region outside the EU, with two chat replicas', () => {
  let env: TestEnv;
  let llm: OpenAIEmulator;
  let http: ReturnType<typeof httpClient>;

  beforeAll(async () => {
    env = await createTestEnv();
    llm = await startOpenAIEmulator({ azureRegions: { 'gpt-4o-mini-swc': 'eastus' } });
    await env.start(identityService);
    const replica = chatEnv(llm, { QUOTA_PROVIDER: 'none' }); // one key-encryption key for both, as in the cluster
    await env.start(chatService, replica);
    await env.start(chatService, replica);
    http = httpClient((await env.start(gatewayService)).url);
  });

  afterAll(async () => {
    await env?.close();
    await llm?.close();
  });

  it('gets one prompt of an EU-only user in all, whichever replica answers the next ones', async () => {
    const token = (await http.post('/v1/auth/register', { email: 'zwei@example.eu', password: PASSWORD, firstName: 'Nele', lastName: 'Moor' })).body.accessToken as string;
    const id = (await http.post('/v1/conversations', { workspace: 'private' }, token)).body.id as string;
    for (let i = 0; i < 8; i++) expect((await http.post(`/v1/conversations/${id}/messages`, { content: `#tokens=3 Frage ${i}` }, token)).status).toBe(201);
    expect(llm.requests({ kind: 'azure' }).filter((r) => r.endpoint === 'gpt-4o-mini-swc')).toHaveLength(1);
  });
});
