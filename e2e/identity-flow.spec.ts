import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import argon2 from 'argon2';
import { decodeJwt } from 'jose';
import { gatewayService } from '@ally/gateway';
import { identityService } from '@ally/identity';
import { confirmEmail, createTestEnv, httpClient, lastEvent, waitFor, type TestEnv } from '@ally/testing';

const PASSWORD = 'Sommerwiese am Fluss 2026';

describe('the identity flow through the gateway, as a new user runs it with curl', () => {
  let env: TestEnv;
  let http: ReturnType<typeof httpClient>;

  beforeAll(async () => {
    env = await createTestEnv();
    await env.start(identityService);
    const gateway = await env.start(gatewayService);
    http = httpClient(gateway.url);
  });

  afterAll(async () => {
    await env?.close();
  });

  const register = async (email: string, extra: Record<string, unknown> = {}) => {
    const res = await http.post('/v1/auth/register', { email, password: PASSWORD, firstName: 'Jana', lastName: 'Novák', locale: 'en', ...extra });
    expect(res.status).toBe(201);
    return res.body;
  };

  it('registers, verifies the email, logs in, refreshes, detects refresh reuse, and manages an organisation', async () => {
    const registered = await register('jana@example.eu');
    expect(registered.user).toMatchObject({ email: 'jana@example.eu', firstName: 'Jana', lastName: 'Novák', emailVerified: false, settings: { restrictToEu: true } });

    const event = await lastEvent<{ userId: string; verificationToken: string }>(env, 'identity.user.registered', (e) => e.data.userId === registered.user.id);
    // The stream carried the token to notify; identity's database keeps its hash only, also in the published outbox row.
    const [row] = await waitFor(async () => {
      const rows = await env.sql<{ data: Record<string, unknown> }>(`SELECT payload->'data' AS data FROM identity.outbox WHERE id = $1 AND sent_at IS NOT NULL`, [event.id]);
      return rows.length ? rows : undefined;
    }, 'the registration event marked published');
    expect(row.data).toMatchObject({ userId: registered.user.id, email: 'jana@example.eu' });
    expect(row.data).not.toHaveProperty('verificationToken');
    expect((await http.post('/v1/auth/verify-email', { token: event.data.verificationToken })).status).toBe(204);
    expect((await http.post('/v1/auth/verify-email', { token: event.data.verificationToken })).status).toBe(400);

    const login = await http.post('/v1/auth/login', { email: 'Jana@Example.eu', password: PASSWORD });
    expect(login.status).toBe(200);
    expect(login.body).toMatchObject({ tokenType: 'Bearer', expiresIn: 900 });
    expect(decodeJwt(login.body.accessToken).sub).toBe(registered.user.id);

    const me = await http.get('/v1/me', login.body.accessToken);
    expect(me.status).toBe(200);
    expect(me.body).toMatchObject({ id: registered.user.id, emailVerified: true, memberships: [] });
    expect(me.headers.get('x-request-id')).toBeTruthy();

    const refreshed = await http.post('/v1/auth/refresh', { refreshToken: login.body.refreshToken });
    expect(refreshed.status).toBe(200);
    const reused = await http.post('/v1/auth/refresh', { refreshToken: login.body.refreshToken });
    expect(reused.status).toBe(401);
    expect(reused.headers.get('content-type')).toContain('application/problem+json');
    // The whole family is revoked: the token issued by the rotation no longer works either.
    expect((await http.post('/v1/auth/refresh', { refreshToken: refreshed.body.refreshToken })).status).toBe(401);

    const session = (await http.post('/v1/auth/login', { email: 'jana@example.eu', password: PASSWORD })).body;
    const org = await http.post('/v1/orgs', { name: 'Novák Consulting GmbH' }, session.accessToken);
    expect(org.status).toBe(201);
    expect(org.body).toMatchObject({ name: 'Novák Consulting GmbH', role: 'owner' });

    const invite = await http.post(`/v1/orgs/${org.body.id}/invitations`, { email: 'piotr@example.eu', role: 'member' }, session.accessToken);
    expect(invite.status).toBe(201);
    const invitation = await lastEvent<{ invitationId: string; token: string }>(env, 'identity.invitation.created', (e) => e.data.invitationId === invite.body.id);

    const piotr = await register('piotr@example.eu', { firstName: 'Piotr', lastName: 'Kowalski' });
    const accepted = await http.post('/v1/invitations/accept', { token: invitation.data.token }, piotr.accessToken);
    expect(accepted.status).toBe(200);
    expect(accepted.body).toMatchObject({ orgId: org.body.id, role: 'member' });

    const members = await http.get(`/v1/orgs/${org.body.id}/members`, session.accessToken);
    expect(members.body.data.map((m: { role: string }) => m.role).sort()).toEqual(['member', 'owner']);

    const settings = await http.patch('/v1/me/settings', { restrictToEu: false }, session.accessToken);
    expect(settings.status).toBe(200);
    expect(settings.body).toEqual({ restrictToEu: false });

    const key = await http.post('/v1/me/api-keys', { name: 'CLI', workspace: org.body.id }, session.accessToken);
    expect(key.status).toBe(201);
    expect(key.body.key).toMatch(/^ally_/);
    const viaKey = await http.get('/v1/me', key.body.key);
    expect(viaKey.status).toBe(200);
    expect(viaKey.body).toMatchObject({ id: registered.user.id, settings: { restrictToEu: false } });
    // A key is for chat (and reading the profile): everything else needs the person signed in, refused before any service is asked.
    const privateKey = await http.post('/v1/me/api-keys', { name: 'Privat', workspace: 'private' }, session.accessToken);
    const refused: [string, Promise<{ status: number; body: any }>][] = [
      ['policy', http.patch(`/v1/orgs/${org.body.id}/policy`, { euOnly: true }, key.body.key)],
      ['invitation', http.post(`/v1/orgs/${org.body.id}/invitations`, { email: 'zacharias@example.eu', role: 'admin' }, key.body.key)],
      ['new organisation', http.post('/v1/orgs', { name: 'Schlüssel GmbH' }, key.body.key)],
      ['profile', http.patch('/v1/me', { firstName: 'Hacked' }, key.body.key)],
      ['settings', http.patch('/v1/me/settings', { restrictToEu: true }, key.body.key)],
      ['another key', http.delete(`/v1/me/api-keys/${privateKey.body.id}`, key.body.key)],
      ['checkout', http.post('/v1/billing/checkout', { workspace: org.body.id, plan: 'team' }, privateKey.body.key)],
      ['usage of another workspace', http.get('/v1/billing/usage?workspace=private', key.body.key)],
      ['data-subject request', http.post('/v1/privacy/requests', { type: 'access' }, key.body.key)],
    ];
    for (const [what, answer] of refused) {
      const res = await answer;
      expect({ what, status: res.status, detail: res.body.detail }).toEqual({ what, status: 403, detail: expect.stringMatching(/API key serves chat in its workspace and reading the account \(GET \/v1\/me\) only/) });
    }
    expect((await http.get('/v1/me', session.accessToken)).body.firstName).not.toBe('Hacked');
    expect((await http.get('/v1/me/api-keys', session.accessToken)).body.data).toHaveLength(2);

    expect((await http.delete(`/v1/me/api-keys/${key.body.id}`, session.accessToken)).status).toBe(204);
    expect((await http.get('/v1/me', key.body.key)).status).toBe(401);
  });

  it('makes a password hash anew at sign-in when the configured argon2 costs differ from the ones it was made with', async () => {
    const { user } = await register('kosten@example.eu');
    // As if made before the costs were raised (here: another time cost than the service's).
    const old = await argon2.hash(PASSWORD, { type: argon2.argon2id, memoryCost: 19_456, timeCost: 3, parallelism: 1 });
    await env.sql(`UPDATE identity.users SET password_hash = $2 WHERE id = $1`, [user.id, old]);
    expect((await http.post('/v1/auth/login', { email: 'kosten@example.eu', password: PASSWORD })).status).toBe(200);
    const [{ password_hash: now }] = await env.sql<{ password_hash: string }>(`SELECT password_hash FROM identity.users WHERE id = $1`, [user.id]);
    expect(now).not.toBe(old);
    expect(now).toMatch(/^\$argon2id\$v=19\$m=19456,p=1,t=2\$/);
    expect((await http.post('/v1/auth/login', { email: 'kosten@example.eu', password: PASSWORD })).status).toBe(200);
  });

  it('names an invitee account in the invitation only once it proved the address (one never confirmed may be a squatter)', async () => {
    const owner = await register('einlader@example.eu', { locale: 'de' });
    await confirmEmail(env, owner.user.id);
    const org = (await http.post('/v1/orgs', { name: 'Einladung GmbH' }, owner.accessToken)).body;
    const invitee = await register('eingeladen@example.eu', { locale: 'en' });
    type Invited = { invitationId: string; inviteeUserId?: string; locale: string };
    const invite = async () => {
      const sent = (await http.post(`/v1/orgs/${org.id}/invitations`, { email: 'eingeladen@example.eu', role: 'member' }, owner.accessToken)).body;
      return (await lastEvent<Invited>(env, 'identity.invitation.created', (e) => e.data.invitationId === sent.id)).data;
    };
    expect(await invite()).toMatchObject({ locale: 'de' });
    expect((await invite()).inviteeUserId).toBeUndefined();
    await confirmEmail(env, invitee.user.id);
    expect(await invite()).toMatchObject({ inviteeUserId: invitee.user.id, locale: 'en' });
  });

  it('answers 404 for an organisation of another tenant', async () => {
    const owner = await register('owner@example.eu');
    const org = (await http.post('/v1/orgs', { name: 'Owner AG' }, owner.accessToken)).body;
    const stranger = await register('stranger@example.eu');
    for (const path of [`/v1/orgs/${org.id}`, `/v1/orgs/${org.id}/members`]) {
      const res = await http.get(path, stranger.accessToken);
      expect(res.status).toBe(404);
    }
    const invite = await http.post(`/v1/orgs/${org.id}/invitations`, { email: 'x@example.eu', role: 'admin' }, stranger.accessToken);
    expect(invite.status).toBe(404);
  });

  it("registers in the browser's language (Accept-Language) when the body names none, in German when neither says", async () => {
    const withHeader = (email: string, acceptLanguage: string, extra: Record<string, unknown> = {}) =>
      http.request('POST', '/v1/auth/register', {
        body: { email, password: PASSWORD, firstName: 'Jana', lastName: 'Novák', ...extra },
        headers: { 'accept-language': acceptLanguage },
      });
    const english = await withHeader('gb@example.eu', 'en-GB,en;q=0.8');
    expect(english.status).toBe(201);
    expect(english.body.user.locale).toBe('en');
    expect((await lastEvent<{ userId: string; locale: string }>(env, 'identity.user.registered', (e) => e.data.userId === english.body.user.id)).data.locale).toBe('en');
    expect((await withHeader('ch@example.eu', 'fr-CH, fr;q=0.9, en;q=0.5, de;q=0.8')).body.user.locale).toBe('de');
    expect((await withHeader('fr@example.eu', 'fr-FR,fr;q=0.9')).body.user.locale).toBe('de');
    expect((await withHeader('chosen@example.eu', 'en-GB', { locale: 'de' })).body.user.locale).toBe('de');
  });

  it('mails no "new sign-in" for the first login from the address the account was registered from, only for another', async () => {
    const from = (ip: string) => ({ 'x-forwarded-for': ip });
    const reg = await http.request('POST', '/v1/auth/register', { body: { email: 'newdevice@example.eu', password: PASSWORD, firstName: 'Jana', lastName: 'Novák' }, headers: from('203.0.113.41') });
    expect(reg.status).toBe(201);
    const signIn = async (ip: string) => {
      const before = new Date().toISOString();
      expect((await http.request('POST', '/v1/auth/login', { body: { email: 'newdevice@example.eu', password: PASSWORD }, headers: from(ip) })).status).toBe(200);
      return (await lastEvent<{ userId: string; ip?: string; newDevice: boolean }>(env, 'identity.user.signed-in', (e) => e.data.userId === reg.body.user.id && e.occurredAt >= before)).data;
    };
    // A sign-in from a known place carries nothing for a mail: no address, name or IP to keep in the stream for days.
    expect(await signIn('203.0.113.41')).toEqual({ userId: reg.body.user.id, method: 'password', newDevice: false });
    expect(await signIn('198.51.100.41')).toMatchObject({ newDevice: true, ip: '198.51.100.41', email: 'newdevice@example.eu', firstName: 'Jana' });
  });

  it('changes made at the same moment all hold: a rename does not write back the EU setting, a role or a policy field it read before', async () => {
    const me = await register('racing@example.eu');
    for (let i = 0; i < 25; i++) {
      const want = i % 2 === 0;
      const [settings, rename] = await Promise.all([
        http.patch('/v1/me/settings', { restrictToEu: want }, me.accessToken),
        http.patch('/v1/me', { firstName: want ? 'Eva' : 'Jana' }, me.accessToken),
        // What the operators' CLI does when it revokes a platform role, landing while the rename runs.
        env.sql(`UPDATE identity.users SET platform_roles = '{}' WHERE id = $1`, [me.user.id]),
      ]);
      expect([settings.status, rename.status]).toEqual([200, 200]);
      const after = await http.get('/v1/me', me.accessToken);
      expect({ i, restrictToEu: after.body.settings.restrictToEu, firstName: after.body.firstName }).toEqual({ i, restrictToEu: want, firstName: want ? 'Eva' : 'Jana' });
      const [row] = await env.sql<{ platform_roles: string[] }>(`SELECT platform_roles FROM identity.users WHERE id = $1`, [me.user.id]);
      expect(row.platform_roles).toEqual([]);
      await env.sql(`UPDATE identity.users SET platform_roles = '{compliance}' WHERE id = $1`, [me.user.id]);
    }
    const org = await http.post('/v1/orgs', { name: 'Racing GmbH' }, me.accessToken);
    for (let i = 0; i < 15; i++) {
      const eu = i % 2 === 0;
      const days = 30 + i;
      await Promise.all([
        http.patch(`/v1/orgs/${org.body.id}/policy`, { euOnly: eu }, me.accessToken),
        http.patch(`/v1/orgs/${org.body.id}/policy`, { chatRetentionDays: days }, me.accessToken),
      ]);
      const [row] = await env.sql<{ eu_only: boolean; chat_retention_days: number }>(`SELECT eu_only, chat_retention_days FROM identity.organizations WHERE id = $1`, [org.body.id]);
      expect({ i, eu: row.eu_only, days: row.chat_retention_days }).toEqual({ i, eu, days });
    }
  });

  it('serves the JWKS and the OpenAPI document', async () => {
    const jwks = await http.get('/.well-known/jwks.json');
    expect(jwks.status).toBe(200);
    expect(jwks.body.keys[0]).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA' });
    expect(jwks.body.keys[0].d).toBeUndefined();
    const openapi = await http.get('/docs/openapi.json');
    expect(openapi.status).toBe(200);
    expect(Object.keys(openapi.body.paths)).toEqual(expect.arrayContaining(['/v1/auth/register', '/v1/me', '/v1/orgs/{orgId}/invitations']));
    // The compliance team's list names the filters the README and API.md use.
    const adminList = openapi.body.paths['/v1/admin/privacy/requests'].get.parameters.map((p: { name: string }) => p.name);
    expect(adminList).toEqual(expect.arrayContaining(['status', 'awaiting', 'limit', 'cursor']));
  });
});
