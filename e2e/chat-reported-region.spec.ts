import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AnswersInFlight, chatService, CompletionService, RouterService } from '@ally/chat';
import { startOpenAIEmulator, type OpenAIEmulator } from '@ally/emulators';
import { gatewayService } from '@ally/gateway';
import { identityService } from '@ally/identity';
import { createTestEnv, httpClient, waitFor, type RunningService, type TestEnv } from '@ally/testing';
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

/**
 * A quarantine outlives the replica that found out, and ends only by a probe
 * that carries nobody's prompt: no EU-only prompt goes to find out whether the
 * resource serves in the EU again.
 */
describe('a deployment kept from EU-only callers after it reported a region outside the EU', () => {
  let env: TestEnv;
  let llm: OpenAIEmulator;
  let http: ReturnType<typeof httpClient>;
  const regions: Record<string, string> = { 'gpt-4o-mini-swc': 'eastus' };
  let first: RunningService;
  let replica: Record<string, string>;

  beforeAll(async () => {
    env = await createTestEnv();
    llm = await startOpenAIEmulator({ azureRegions: regions });
    await env.start(identityService);
    // One key-encryption key for both replicas, as in the cluster.
    replica = chatEnv(llm, { QUOTA_PROVIDER: 'none', OUTSIDE_EU_RECHECK_MS: '300' });
    first = await env.start(chatService, replica);
    http = httpClient((await env.start(gatewayService)).url);
  });

  afterAll(async () => {
    await env?.close();
    await llm?.close();
  });

  const toSweden = () => llm.requests({ endpoint: 'gpt-4o-mini-swc' });
  const isProbe = (r: { messages?: unknown; stream?: boolean }) => JSON.stringify(r.messages) === JSON.stringify([{ role: 'user', content: 'ping' }]) && !r.stream;
  const probes = () => toSweden().filter(isProbe);

  it('stays so on a replica started afterwards and while its probes find it outside the EU, and is used again once they find it in the EU', async () => {
    const token = (await http.post('/v1/auth/register', { email: 'sonde@example.eu', password: PASSWORD, firstName: 'Nele', lastName: 'Moor' })).body.accessToken as string;
    const id = (await http.post('/v1/conversations', { workspace: 'private' }, token)).body.id as string;
    const ask = async (content: string) => {
      const answer = await http.post(`/v1/conversations/${id}/messages`, { content }, token);
      expect(answer.status).toBe(201);
      return answer.body.residency;
    };
    expect(await ask('#tokens=3 Wo bist du?')).toMatchObject({ deployment: 'gpt-4o-mini@azure-datazone-eu', alsoSentTo: [{ deployment: SWEDEN, reportedRegion: 'East US' }] });
    const recorded = () => env.sql<{ deployment_id: string; reported_region: string; reported_at: string }>(`SELECT deployment_id, reported_region, reported_at::text FROM chat.outside_eu_deployments`);
    const [row] = await waitFor(async () => ((await recorded()).length ? recorded() : undefined), 'the quarantine recorded');
    expect(row).toMatchObject({ deployment_id: SWEDEN, reported_region: 'East US' });

    // The replica that found out goes (a rollout); the one that takes over knows from the start.
    const second = await env.start(chatService, replica);
    const router = second.app.get(RouterService);
    expect(router.isEuResidentNow(router.deployment(SWEDEN)!)).toBe(false);
    await env.stop(first);
    const probesBefore = probes().length;
    await waitFor(async () => probes().length >= probesBefore + 2 || undefined, 'two probes');
    for (let i = 0; i < 3; i++) expect(await ask(`#tokens=3 Frage ${i}`)).toMatchObject({ deployment: 'gpt-4o-mini@azure-datazone-eu', euResident: true });
    // What reached it since the first prompt were probes, and nothing of anyone's.
    expect(toSweden().slice(1).every(isProbe)).toBe(true);

    // A caller who allows models outside the EU still reaches it (when the EU ones fail), and its report of East US
    // refreshes the quarantine: a probe claimed before that releases nothing.
    const anywhere = (await http.post('/v1/auth/register', { email: 'ueberall@example.eu', password: PASSWORD, firstName: 'Uwe', lastName: 'Moor' })).body.accessToken as string;
    expect((await http.patch('/v1/me/settings', { restrictToEu: false }, anywhere)).status).toBe(200);
    const elsewhere = (await http.post('/v1/conversations', { workspace: 'private' }, anywhere)).body.id as string;
    llm.failNext({ status: 503, deployment: 'gpt-4o-mini-dzeu' });
    llm.failNext({ status: 503, endpoint: 'openai-eu' });
    const served = await http.post(`/v1/conversations/${elsewhere}/messages`, { content: '#tokens=3 Irgendwo' }, anywhere);
    expect(served.body.residency).toMatchObject({ deployment: SWEDEN, reportedRegion: 'East US', euResident: false });
    await waitFor(async () => ((await recorded())[0].reported_at > row.reported_at ? true : undefined), 'the report refreshed');

    // The resource is mended: the next probe releases it, and EU-only prompts go to it first again.
    delete regions['gpt-4o-mini-swc'];
    await waitFor(async () => ((await env.sql(`SELECT 1 FROM chat.outside_eu_deployments`)).length === 0 ? true : undefined), 'the release');
    await waitFor(async () => ((await ask('#tokens=3 Und jetzt?')).deployment === SWEDEN ? true : undefined), 'Sweden Central to answer again', 2_000);
  });
});

/**
 * A deployment quarantined for reporting a region outside the EU ranks with
 * those outside it; here the Global deployment ranks before it (priority 5), so
 * a prompt can reach a deployment outside the EU before an EU one answers.
 */
describe('the receipt of an answer whose prompt reached a deployment outside the EU first', () => {
  let world: ChatWorld;
  let dir: string;
  const regions: Record<string, string> = { 'gpt-4o-mini-swc': 'eastus' };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ally-catalog-'));
    const catalog = JSON.parse(readFileSync('services/chat/config/models.dev.json', 'utf8'));
    for (const d of catalog.deployments) if (d.id === 'gpt-4o-mini@azure-global') d.priority = 5;
    writeFileSync(join(dir, 'models.json'), JSON.stringify(catalog));
    world = await startChatWorld({ llm: { azureRegions: regions }, chat: { MODEL_CATALOG_FILE: join(dir, 'models.json') } });
  });

  afterAll(async () => {
    await world?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('is not EU-resident and names it, also when the one that answered is in the EU', async () => {
    const token = (await world.http.post('/v1/auth/register', { email: 'weltweit@example.eu', password: PASSWORD, firstName: 'Nele', lastName: 'Moor' })).body.accessToken as string;
    expect((await world.http.patch('/v1/me/settings', { restrictToEu: false }, token)).status).toBe(200);
    const id = (await world.http.post('/v1/conversations', { workspace: 'private' }, token)).body.id as string;
    // Sweden Central reports East US once: quarantined. Then its resource is mended and answers from Sweden again.
    expect((await world.http.post(`/v1/conversations/${id}/messages`, { content: '#tokens=3 Hallo' }, token)).body.residency).toMatchObject({ deployment: SWEDEN, euResident: false });
    delete regions['gpt-4o-mini-swc'];
    world.llm.failNext({ status: 503, deployment: 'gpt-4o-mini-dzeu' });
    world.llm.failNext({ status: 503, endpoint: 'openai-eu' });
    world.llm.failNext({ status: 503, deployment: 'gpt-4o-mini-global' });
    world.llm.clearRequests();
    const answer = await world.http.post(`/v1/conversations/${id}/messages`, { content: '#tokens=3 Noch einmal' }, token);
    expect(answer.status).toBe(201);
    expect(world.llm.requests({ operation: 'chat.completions' }).map((r) => r.endpoint)).toEqual(['gpt-4o-mini-dzeu', 'openai-eu', 'gpt-4o-mini-global', 'gpt-4o-mini-swc']);
    expect(answer.body.residency).toMatchObject({
      deployment: SWEDEN,
      reportedRegion: 'Sweden Central',
      euResident: false,
      alsoSentTo: [{ deployment: 'gpt-4o-mini@azure-global', region: 'global' }],
    });
  });
});

/** Requests prepared before something changed, sent after it: they go by what holds when they are sent. */
describe('a request prepared before a change and sent after it', () => {
  let world: ChatWorld;

  beforeAll(async () => {
    world = await startChatWorld({ llm: { azureRegions: { 'gpt-4o-mini-swc': 'eastus' } } });
  });

  afterAll(async () => {
    await world?.close();
  });

  const register = async (email: string) => {
    const body = (await world.http.post('/v1/auth/register', { email, password: PASSWORD, firstName: 'Nele', lastName: 'Moor' })).body;
    return { userId: body.user.id as string, platformRoles: [] as [] };
  };

  it('is not sent to a first deployment quarantined meanwhile (another request found it answering from outside the EU)', async () => {
    const completions = world.chat.app.get(CompletionService);
    const [ana, ben] = [await register('ana@example.eu'), await register('ben@example.eu')];
    // Both EU-only, both prepared with Sweden Central first, before anyone knew.
    const first = await completions.prepare(ana, 'private', undefined, [{ role: 'user', content: '#tokens=3 Hallo' }]);
    const second = await completions.prepare(ben, 'private', undefined, [{ role: 'user', content: '#tokens=3 Hallo' }]);
    expect([first.candidates[0].id, second.candidates[0].id]).toEqual([SWEDEN, SWEDEN]);
    world.llm.clearRequests();
    await completions.complete(first);
    const answer = await completions.complete(second);
    // The first found out (its prompt had gone there); the second's never did.
    expect(world.llm.requests({ kind: 'azure' }).map((r) => r.endpoint)).toEqual(['gpt-4o-mini-swc', 'gpt-4o-mini-dzeu', 'gpt-4o-mini-dzeu']);
    expect(answer.residency).toMatchObject({ deployment: 'gpt-4o-mini@azure-datazone-eu', euResident: true });
  });

  it('names a deployment quarantined now EU-resident on a receipt only when its answer names an EU region (one that names none proves nothing)', async () => {
    const completions = world.chat.app.get(CompletionService);
    const router = world.chat.app.get(RouterService);
    const sweden = router.deployment(SWEDEN)!;
    router.quarantineOutsideEu(SWEDEN);
    try {
      const prepared = await completions.prepare(await register('quinn@example.eu'), 'private', undefined, [{ role: 'user', content: 'Hallo' }]);
      expect(completions.receipt(sweden, prepared.policy, new Headers()).euResident).toBe(false);
      expect(completions.receipt(sweden, prepared.policy, new Headers({ 'x-ms-region': 'Sweden Central' })).euResident).toBe(true);
    } finally {
      router.releaseOutsideEu(SWEDEN);
    }
  });

  it('is stopped when the workspace it answers in is erased while it is still prepared', async () => {
    const inFlight = world.chat.app.get(AnswersInFlight);
    const cleo = await register('cleo@example.eu');
    const [org, other] = [randomUUID(), randomUUID()];
    const prepared = (workspace: string) => {
      let ready!: () => void;
      const started = inFlight.trackFromStart({ userId: cleo.userId }, () => new Promise<string>((resolve) => (ready = () => resolve(workspace))), (w) => w);
      return { started, ready: () => ready() };
    };
    const inOrg = prepared(org);
    const elsewhere = prepared(other);
    // The erasure of the organisation's workspace comes while both are still being prepared (their workspace unknown yet).
    inFlight.stop({ userId: cleo.userId, scope: org });
    inOrg.ready();
    elsewhere.ready();
    const [stopped, going] = [await inOrg.started, await elsewhere.started];
    expect(stopped.stop.signal.aborted).toBe(true);
    expect(stopped.stop.signal.reason).toMatchObject({ status: 410 });
    expect(going.stop.signal.aborted).toBe(false);
    stopped.stop.release();
    going.stop.release();
  });
});

/** Sweden Central the only EU deployment of its model: when it reports serving from outside the EU, nothing in the EU is left. */
describe('an EU-only request whose only allowed deployment reports serving from outside the EU', () => {
  let world: ChatWorld;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ally-catalog-'));
    const catalog = JSON.parse(readFileSync('services/chat/config/models.dev.json', 'utf8'));
    catalog.deployments = catalog.deployments.filter((d: { id: string; model: string }) => d.model !== 'gpt-4o-mini' || [SWEDEN, 'gpt-4o-mini@azure-global'].includes(d.id));
    writeFileSync(join(dir, 'models.json'), JSON.stringify(catalog));
    world = await startChatWorld({ llm: { azureRegions: { 'gpt-4o-mini-swc': 'eastus' } }, chat: { MODEL_CATALOG_FILE: join(dir, 'models.json') } });
  });

  afterAll(async () => {
    await world?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers the 422 that nothing allowed is left, as its retry would, not a 503 saying to try again', async () => {
    const token = (await world.http.post('/v1/auth/register', { email: 'zuletzt@example.eu', password: PASSWORD, firstName: 'Zora', lastName: 'Moor' })).body.accessToken as string;
    const id = (await world.http.post('/v1/conversations', { workspace: 'private' }, token)).body.id as string;
    const ask = (content: string) => world.http.post(`/v1/conversations/${id}/messages`, { content, model: 'gpt-4o-mini' }, token);
    const [first, again] = [await ask('#tokens=3 Hallo'), await ask('#tokens=3 Noch einmal')];
    expect([first.status, again.status]).toEqual([422, 422]);
    expect(first.body.detail).toBe(again.body.detail);
    // Only the first reached Sweden Central (it answered from East US, and was not used); the global one never.
    expect(world.llm.requests({ operation: 'chat.completions' }).map((r) => r.endpoint)).toEqual(['gpt-4o-mini-swc']);
  });
});
