import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { identityService } from '@ally/identity';
import { confirmEmail, waitFor, type TestEnv } from '@ally/testing';
import { startPlatformWorld, type PlatformWorld } from './platform-world.js';

const PASSWORD = 'Leuchtturm am Deich bei Ebbe';

/**
 * What a request of one scope leaves behind: a whole account's erasure leaves
 * no row naming the subject anywhere; one of the private workspace takes that
 * workspace's data (its cap included); an objection for one workspace leaves
 * the account's own data (the login audit) alone.
 */
describe('privacy requests keep to their scope, and leave nothing of it behind', () => {
  let world: PlatformWorld;
  let env: TestEnv;
  let http: PlatformWorld['http'];

  beforeAll(async () => {
    world = await startPlatformWorld({ gateway: true });
    ({ env, http } = world);
  });
  afterAll(async () => {
    await world?.close();
  });

  const register = async (firstName: string, lastName: string) => {
    const email = `${firstName.toLowerCase()}-${randomUUID().slice(0, 8)}@example.eu`;
    const r = await http.post('/v1/auth/register', { email, password: PASSWORD, firstName, lastName, locale: 'de' });
    expect(r.status).toBe(201);
    await confirmEmail(env, r.body.user.id);
    return { email, ...(r.body as { user: { id: string }; accessToken: string }) };
  };
  const complianceToken = async () => {
    const cora = await register('Cora', 'Pruefer');
    await identityService.commands!['grant-role'](world.services.identity.app, [cora.email, 'compliance']);
    return (await http.post('/v1/auth/login', { email: cora.email, password: PASSWORD })).body.accessToken as string;
  };
  const everything = async () => {
    const tables = await env.sql<{ s: string; t: string }>(
      `SELECT table_schema AS s, table_name AS t FROM information_schema.tables WHERE table_schema IN ('identity', 'chat', 'billing', 'notify', 'privacy') AND table_type = 'BASE TABLE'`,
    );
    const dump: Record<string, string> = {};
    for (const { s, t } of tables) dump[`${s}.${t}`] = JSON.stringify(await env.sql(`SELECT * FROM "${s}"."${t}"`));
    return dump;
  };
  const adminFind = (cora: string, id: string) =>
    waitFor(async () => {
      const list = await http.get('/v1/admin/privacy/requests?limit=100', cora);
      const r = list.body.data.find((x: { id: string }) => x.id === id);
      return r && (r.status === 'completed' || r.status === 'failed') ? r : undefined;
    }, `request ${id}`, 40_000);

  const awaitingDecision = (token: string, id: string) =>
    waitFor(async () => {
      const r = await http.get(`/v1/privacy/requests/${id}`, token);
      return r.body.status === 'in_progress' && r.body.steps.every((s: { status: string }) => s.status === 'completed') ? r.body : undefined;
    }, `privacy request ${id} to await its decision`, 30_000);

  it('an erasure of the whole account leaves no row naming the subject, their private spend cap included', async () => {
    const ida = await register('Ida', 'Kapphahn');
    const capped = await http.request('PUT', '/v1/billing/caps', { body: { workspace: 'private', monthlyTokens: 5000 }, token: ida.accessToken });
    expect(capped.status).toBe(200);
    expect(await env.sql(`SELECT workspace, user_id FROM billing.caps WHERE workspace = $1`, [`private:${ida.user.id}`])).toHaveLength(1);
    const erasure = await http.post('/v1/privacy/requests', { type: 'erasure' }, ida.accessToken);
    expect(erasure.status).toBe(202);
    const cora = await complianceToken();
    const done = await adminFind(cora, erasure.body.id);
    expect(done.status).toBe('completed');
    const dump = await everything();
    const traces = Object.entries(dump)
      .filter(([t]) => !t.endsWith('.outbox'))
      .filter(([, rows]) => [ida.user.id, ida.email].some((n) => rows.includes(n)))
      .map(([t]) => t);
    expect(traces).toEqual([]);
  });

  it("an erasure of the private workspace takes its spend cap, which its export showed", async () => {
    const ina = await register('Ina', 'Kappwerk');
    expect((await http.request('PUT', '/v1/billing/caps', { body: { workspace: 'private', monthlyTokens: 5000 }, token: ina.accessToken })).status).toBe(200);
    const access = await http.post('/v1/privacy/requests', { type: 'access', scope: 'private' }, ina.accessToken);
    const cora = await complianceToken();
    const exp = await adminFind(cora, access.body.id);
    expect(exp.status).toBe('completed');
    const files = (await http.get(`/v1/privacy/requests/${access.body.id}/download?format=json`, ina.accessToken)).body.files;
    // The export shows the cap as the subject's data of the private workspace...
    expect(files['data/billing.json'].categories.contract.caps).toEqual([expect.objectContaining({ workspace: `private:${ina.user.id}` })]);
    const erasure = await http.post('/v1/privacy/requests', { type: 'erasure', scope: 'private' }, ina.accessToken);
    expect((await adminFind(cora, erasure.body.id)).status).toBe('completed');
    // ...and the erasure of that scope takes it.
    expect(await env.sql(`SELECT workspace FROM billing.caps WHERE workspace = $1`, [`private:${ina.user.id}`])).toEqual([]);
  });

  it("an upheld objection for the private workspace leaves the account's login audit (the whole account's, like a restriction of one workspace)", async () => {
    const olga = await register('Olga', 'Einspruch');
    // Two sign-ins: login-audit rows of the account.
    for (let i = 0; i < 2; i++) expect((await http.post('/v1/auth/login', { email: olga.email, password: PASSWORD })).status).toBe(200);
    const before = await env.sql(`SELECT 1 FROM identity.login_audit WHERE user_id = $1`, [olga.user.id]);
    expect(before.length).toBeGreaterThan(0);
    const objection = await http.post('/v1/privacy/requests', { type: 'objection', scope: 'private' }, olga.accessToken);
    expect(objection.status).toBe(202);
    await awaitingDecision(olga.accessToken, objection.body.id);
    const cora = await complianceToken();
    const decided = await http.post(`/v1/admin/privacy/requests/${objection.body.id}/decision`, { decision: 'uphold', reason: 'Dem Widerspruch wird stattgegeben.' }, cora);
    expect(decided.status).toBe(200);
    // identity has heard the objection, its upholding and the decision.
    await waitFor(async () => ((await env.sql(`SELECT 1 FROM identity.inbox WHERE consumer = 'identity-objections'`)).length >= 3 ? true : undefined), 'identity to hear the decision');
    const after = await env.sql(`SELECT 1 FROM identity.login_audit WHERE user_id = $1`, [olga.user.id]);
    const flag = await env.sql<{ login_audit_objected: boolean }>(`SELECT login_audit_objected FROM identity.users WHERE id = $1`, [olga.user.id]);
    expect({ rows: after.length, objected: flag[0].login_audit_objected }).toEqual({ rows: before.length, objected: false });
  });
});
