import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createEnvelope, privacyRetentionRpc, privacyRpcs } from '@ally/contracts';
import { gatewayService } from '@ally/gateway';
import { addressHashKey, identityService, keyedAddressHash } from '@ally/identity';
import { RpcClient } from '@ally/messaging';
import { AgeRetentionService } from '@ally/platform';
import { confirmEmail, createTestEnv, httpClient, lastEvent, publishEvent, waitFor, type RunningService, type TestEnv } from '@ally/testing';

const PASSWORD = 'Sommerwiese am Fluss 2026';
const IdentityPrivacy = privacyRpcs('identity');
const IDENTITY_KEK = randomBytes(32).toString('base64');
/** How the login audit keeps an address (as stored, lower case): keyed from identity's KEK. */
const addressHash = (email: string) => keyedAddressHash(addressHashKey(Buffer.from(IDENTITY_KEK, 'base64')), email);
/** How releases before kept it: a plain hash, which anyone can compute from a list of addresses. */
const plainHash = (email: string) => createHash('sha256').update(email).digest('base64url');

/**
 * What identity keeps of a person that an access request must show and an
 * erasure must remove: invitations of an organisation's workspace, sign-ins
 * recorded only by the address hash, and where sessions were opened from
 * while the login audit is paused for them.
 */
describe('identity: personal data by scope of a data-subject request', () => {
  let env: TestEnv;
  let http: ReturnType<typeof httpClient>;
  let rpc: RpcClient;
  let identity: RunningService;

  beforeAll(async () => {
    env = await createTestEnv();
    identity = await env.start(identityService, { IDENTITY_KEK });
    const gateway = await env.start(gatewayService, { AUTH_RATE_LIMIT_PER_MINUTE: '300' });
    http = httpClient(gateway.url);
    rpc = new RpcClient(await env.nats(), env.prefix);
    await rpc.connect();
  });

  afterAll(async () => {
    await rpc?.close();
    await env?.close();
  });

  const register = async (email: string, extra: Record<string, unknown> = {}) => {
    const res = await http.post('/v1/auth/register', { email, password: PASSWORD, firstName: 'Mia', lastName: 'Sander', locale: 'de', ...extra });
    expect(res.status).toBe(201);
    await confirmEmail(env, res.body.user.id);
    return res.body as { user: { id: string; memberships: { orgId: string }[] }; accessToken: string };
  };
  /** Invites, and answers the token the invitation mail carries (unless `pending`). */
  const invite = async (orgId: string, email: string, role: 'admin' | 'member', inviter: string, invitee?: string) => {
    const res = await http.post(`/v1/orgs/${orgId}/invitations`, { email, role }, inviter);
    expect(res.status).toBe(201);
    if (!invitee) return;
    const event = await lastEvent<{ invitationId: string; token: string }>(env, 'identity.invitation.created', (e) => e.data.invitationId === res.body.id);
    expect((await http.post('/v1/invitations/accept', { token: event.data.token }, invitee)).status).toBe(200);
  };
  const signIn = (email: string, ip: string, password = PASSWORD) =>
    http.request('POST', '/v1/auth/login', { body: { email, password }, headers: { 'x-forwarded-for': ip, 'user-agent': `Browser-${ip}` } });
  /** A restriction of the whole account, as privacy announces it; identity has applied it on return. */
  const restrict = async (userId: string, event: 'privacy.subject.restricted' | 'privacy.subject.restriction-lifted', requestId: string) => {
    await publishEvent(env, createEnvelope({ type: event, source: 'privacy', data: { requestId, userId, scope: 'all' }, subject: { userId } }));
    const lifted = event === 'privacy.subject.restriction-lifted';
    await waitFor(
      async () => ((await env.sql(`SELECT 1 FROM identity.restrictions WHERE request_id = $1 AND (lifted_at IS NOT NULL) = $2`, [requestId, lifted])).length ? true : undefined),
      event,
    );
  };

  it("an organisation's erasure takes the invitations to the person and their name from those they sent there; the export showed the same rows", async () => {
    const owner = await register('olga@scopes.example.eu', { organizationName: 'Werft Ostsee GmbH' });
    const orgId = owner.user.memberships[0].orgId;
    const other = (await http.post('/v1/orgs', { name: 'Zweite Werft KG' }, owner.accessToken)).body;
    const mia = await register('mia@scopes.example.eu');
    const kai = await register('kai@scopes.example.eu');
    await invite(orgId, 'mia@scopes.example.eu', 'admin', owner.accessToken, mia.accessToken);
    // As an admin she invites: one accepted, one pending.
    await invite(orgId, 'kai@scopes.example.eu', 'member', mia.accessToken, kai.accessToken);
    await invite(orgId, 'nobody-yet@scopes.example.eu', 'member', mia.accessToken);
    // Another organisation's invitation to her is outside this scope.
    await invite(other.id, 'mia@scopes.example.eu', 'member', owner.accessToken);

    const invitationsIn = (exported: { categories: Record<string, any> }) => exported.categories.memberships.invitations as { received: { org_id: string }[]; sent: { org_id: string }[] };
    const before = invitationsIn(await rpc.call(IdentityPrivacy.export, { userId: mia.user.id, scope: orgId }));
    expect(before.received.map((i) => i.org_id)).toEqual([orgId]);
    expect(before.sent.map((i) => i.org_id)).toEqual([orgId, orgId]);

    await rpc.call(IdentityPrivacy.erase, { userId: mia.user.id, scope: orgId });

    expect(await env.sql(`SELECT org_id FROM identity.invitations WHERE email = 'mia@scopes.example.eu'`)).toEqual([{ org_id: other.id }]);
    expect(await env.sql(`SELECT email FROM identity.invitations WHERE invited_by = $1`, [mia.user.id])).toEqual([]);
    // Kai's invitation stays (it is his membership's record), only no longer naming her.
    expect(await env.sql(`SELECT invited_by FROM identity.invitations WHERE email = 'kai@scopes.example.eu'`)).toEqual([{ invited_by: null }]);
    expect(invitationsIn(await rpc.call(IdentityPrivacy.export, { userId: mia.user.id, scope: orgId }))).toEqual({ received: [], sent: [] });
    expect((await http.get(`/v1/orgs/${orgId}`, kai.accessToken)).status).toBe(200);
  });

  it("the private workspace's erasure takes its API keys, which the private export showed: the key stops working", async () => {
    const pia = await register('pia@scopes.example.eu', { organizationName: 'Pia Werkstatt GmbH' });
    const orgId = pia.user.memberships[0].orgId;
    const privateKey = (await http.post('/v1/me/api-keys', { name: 'Skript', workspace: 'private' }, pia.accessToken)).body.key as string;
    const orgKey = (await http.post('/v1/me/api-keys', { name: 'Firma', workspace: orgId }, pia.accessToken)).body.key as string;
    const exported = await rpc.call(IdentityPrivacy.export, { userId: pia.user.id, scope: 'private' });
    expect((exported.categories['api-keys'] as { name: string }[]).map((k) => k.name)).toEqual(['Skript']);

    const erased = await rpc.call(IdentityPrivacy.erase, { userId: pia.user.id, scope: 'private' });
    expect(erased.affected).toEqual({ memberships: 0, 'api-keys': 1 });
    expect((await http.get('/v1/me', privateKey)).status).toBe(401);
    expect((await http.get('/v1/me', orgKey)).status).toBe(200);
    expect((await rpc.call(IdentityPrivacy.export, { userId: pia.user.id, scope: 'private' })).categories['api-keys']).toEqual([]);
  });

  it('old invitations go in retention runs, never those naming a held person (inviter or invitee)', async () => {
    const owner = await register('otto@scopes.example.eu', { organizationName: 'Otto Reederei GmbH' });
    const orgId = owner.user.memberships[0].orgId;
    const held = await register('helga@scopes.example.eu');
    const free = await register('fritz@scopes.example.eu');
    await invite(orgId, 'helga@scopes.example.eu', 'member', owner.accessToken, held.accessToken);
    await invite(orgId, 'fritz@scopes.example.eu', 'member', owner.accessToken, free.accessToken);
    await env.sql(`UPDATE identity.invitations SET accepted_at = now() - interval '40 days' WHERE org_id = $1`, [orgId]);
    const run = (heldUserIds: string[], dryRun: boolean) =>
      rpc.call(privacyRetentionRpc('identity'), { categories: [{ category: 'memberships', retentionDays: null }], dryRun, heldUserIds });

    // identity's hourly housekeeping does not touch them: it does not know who is held.
    await identity.app.get(AgeRetentionService).purgeExpired();
    expect(await env.sql(`SELECT 1 FROM identity.invitations WHERE org_id = $1`, [orgId])).toHaveLength(2);
    expect((await run([held.user.id, owner.user.id], false)).results).toEqual([{ category: 'memberships', affected: 0 }]);
    expect((await run([held.user.id], false)).results).toEqual([{ category: 'memberships', affected: 1 }]);
    expect(await env.sql(`SELECT email FROM identity.invitations WHERE org_id = $1`, [orgId])).toEqual([{ email: 'helga@scopes.example.eu' }]);
  });

  it('sign-ins recorded only by the address hash (during a restriction) are in the access export and go with the erasure', async () => {
    const email = 'hanna@scopes.example.eu';
    const hanna = await register(email, { firstName: 'Hanna' });
    const bystander = await register('ben@scopes.example.eu');
    await restrict(hanna.user.id, 'privacy.subject.restricted', randomUUID());
    // The address as typed differs in case; the schema lower-cases it before it is hashed.
    expect((await signIn(email.toUpperCase(), '203.0.113.7')).status).toBe(200);
    expect((await signIn(email, '203.0.113.8', 'ganz falsches Passwort')).status).toBe(401);
    expect((await signIn('ben@scopes.example.eu', '203.0.113.9', 'ganz falsches Passwort')).status).toBe(401);
    const rows = await env.sql(`SELECT user_id, ip, succeeded FROM identity.login_audit WHERE email_hash = $1 ORDER BY id`, [addressHash(email)]);
    expect(rows).toEqual([
      { user_id: null, ip: null, succeeded: true },
      { user_id: null, ip: null, succeeded: false },
    ]);

    expect(await env.sql(`SELECT 1 FROM identity.login_audit WHERE email_hash = $1`, [plainHash(email)])).toEqual([]);
    // A failed sign-in a release before recorded under the plain hash: theirs too.
    await env.sql(`INSERT INTO identity.login_audit (email_hash, succeeded, method, occurred_at) VALUES ($1, false, 'password', now() - interval '1 day')`, [plainHash(email)]);

    const exported = await rpc.call(IdentityPrivacy.export, { userId: hanna.user.id, scope: 'all' });
    expect((exported.categories['login-audit'] as { succeeded: boolean }[]).map((r) => r.succeeded)).toEqual([false, true, false]);

    await rpc.call(IdentityPrivacy.erase, { userId: hanna.user.id, scope: 'all' });
    expect(await env.sql(`SELECT 1 FROM identity.login_audit WHERE email_hash = ANY($1::text[])`, [[addressHash(email), plainHash(email)]])).toEqual([]);
    // Someone else's attempts stay.
    expect(await env.sql(`SELECT user_id FROM identity.login_audit WHERE email_hash = $1`, [addressHash('ben@scopes.example.eu')])).toEqual([{ user_id: bystander.user.id }]);
  });

  it('sessions opened while the login audit is paused keep neither IP nor user agent; such a place is simply not known afterwards', async () => {
    const email = 'rita@scopes.example.eu';
    const rita = await register(email, { firstName: 'Rita' });
    const sessionsOf = () => env.sql<{ ip: string | null; user_agent: string | null }>(`SELECT ip, user_agent FROM identity.sessions WHERE user_id = $1 ORDER BY created_at`, [rita.user.id]);
    const newDevice = async (ip: string) => {
      const res = await signIn(email, ip);
      expect(res.status).toBe(200);
      const sid = JSON.parse(Buffer.from(res.body.accessToken.split('.')[1], 'base64url').toString()).sid as string;
      const [session] = await env.sql(`SELECT created_at FROM identity.sessions WHERE id = $1`, [sid]);
      return (await lastEvent<{ userId: string; newDevice: boolean }>(env, 'identity.user.signed-in', (e) => e.data.userId === rita.user.id && e.occurredAt >= session.created_at.toISOString())).data.newDevice;
    };
    expect(await newDevice('198.51.100.1')).toBe(true);
    const restriction = randomUUID();
    await restrict(rita.user.id, 'privacy.subject.restricted', restriction);
    // The security mail still goes during a restriction.
    expect(await newDevice('198.51.100.2')).toBe(true);
    expect((await sessionsOf()).slice(-1)).toEqual([{ ip: null, user_agent: null }]);
    // A pending objection to the login audit pauses it as well.
    await restrict(rita.user.id, 'privacy.subject.restriction-lifted', restriction);
    await publishEvent(env, createEnvelope({ type: 'privacy.subject.objected', source: 'privacy', data: { requestId: randomUUID(), userId: rita.user.id, scope: 'all', categories: ['login-audit'] }, subject: { userId: rita.user.id } }));
    await waitFor(async () => ((await env.sql(`SELECT 1 FROM identity.objections WHERE user_id = $1`, [rita.user.id])).length ? true : undefined), 'the objection');
    expect((await signIn(email, '198.51.100.3')).status).toBe(200);
    const sessions = await sessionsOf();
    expect(sessions.slice(-1)).toEqual([{ ip: null, user_agent: null }]);
    expect(sessions.filter((s) => s.ip !== null)).toEqual([
      { ip: '127.0.0.1', user_agent: expect.any(String) },
      { ip: '198.51.100.1', user_agent: 'Browser-198.51.100.1' },
    ]);

    // Once nothing pauses the audit: the place first seen during the restriction is not known, one seen before is.
    await env.sql(`UPDATE identity.objections SET decided_at = now() WHERE user_id = $1`, [rita.user.id]);
    expect(await newDevice('198.51.100.2')).toBe(true);
    expect(await newDevice('198.51.100.1')).toBe(false);
  });
});
