import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { gatewayService } from '@ally/gateway';
import { identityService } from '@ally/identity';
import { jetstream } from '@nats-io/jetstream';
import { eventsStreamName, IdentityRpc, privacyRpcs } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { confirmEmail, createTestEnv, httpClient, lastEvent, waitFor, type TestEnv } from '@ally/testing';
import { expectProblem } from './problem-assertions.js';

const PASSWORD = 'Sommerwiese am Fluss 2026';
const IdentityPrivacy = privacyRpcs('identity');

/**
 * Ways back into an account or an organisation that should have been closed:
 * a removed admin's pending invitations, API keys of someone who squatted an
 * address before its owner signed up, keys of a workspace erased by request.
 */
describe('identity: no way back in for someone who was shown out', () => {
  let env: TestEnv;
  let http: ReturnType<typeof httpClient>;
  let rpc: RpcClient;

  beforeAll(async () => {
    env = await createTestEnv();
    await env.start(identityService);
    // Many sign-ups from one address: more than the 30 a minute the gateway allows one IP by default.
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
    const res = await http.post('/v1/auth/register', { email, password: PASSWORD, firstName: 'Jana', lastName: 'Novák', locale: 'en', ...extra });
    expect(res.status).toBe(201);
    return res.body as { user: { id: string; memberships: { orgId: string }[] }; accessToken: string; refreshToken: string };
  };

  /** Invites, and answers the token the invitation mail carries. */
  const invite = async (orgId: string, email: string, role: 'admin' | 'member', token: string) => {
    const res = await http.post(`/v1/orgs/${orgId}/invitations`, { email, role }, token);
    expect(res.status).toBe(201);
    return (await lastEvent<{ invitationId: string; token: string }>(env, 'identity.invitation.created', (e) => e.data.invitationId === res.body.id)).data.token;
  };

  it("a removed admin's pending invitations end with their membership; others' stay valid", async () => {
    const owner = await register('owner@takeover.example.eu', { organizationName: 'Eigentum GmbH' });
    const orgId = owner.user.memberships[0].orgId;
    const admin = await register('admin@takeover.example.eu');
    // Both invite: both confirmed their addresses.
    for (const u of [owner, admin]) await confirmEmail(env, u.user.id);
    const accepted = await http.post('/v1/invitations/accept', { token: await invite(orgId, 'admin@takeover.example.eu', 'admin', owner.accessToken) }, admin.accessToken);
    expect(accepted.body).toMatchObject({ orgId, role: 'admin' });

    // While still an admin: a second address of theirs, as admin.
    const alt = await register('second-address@takeover.example.eu');
    const altToken = await invite(orgId, 'second-address@takeover.example.eu', 'admin', admin.accessToken);
    // And the owner's own invitation, pending at the same time.
    const colleague = await register('colleague@takeover.example.eu');
    const colleagueToken = await invite(orgId, 'colleague@takeover.example.eu', 'member', owner.accessToken);

    expect((await http.delete(`/v1/orgs/${orgId}/members/${admin.user.id}`, owner.accessToken)).status).toBe(204);

    expectProblem(await http.post('/v1/invitations/accept', { token: altToken }, alt.accessToken), 400, ['token']);
    expect((await http.get(`/v1/orgs/${orgId}`, alt.accessToken)).status).toBe(404);
    const members = await http.get(`/v1/orgs/${orgId}/members`, owner.accessToken);
    expect(members.body.data.map((m: { userId: string }) => m.userId)).toEqual([owner.user.id]);

    const joined = await http.post('/v1/invitations/accept', { token: colleagueToken }, colleague.accessToken);
    expect(joined.status).toBe(200);
    expect(joined.body).toMatchObject({ orgId, role: 'member' });
  });

  it('an invitation sent to a wrong address can be taken back: the owner and admins list the open ones and revoke one, whose link then fails', async () => {
    const owner = await register('inviter@takeover.example.eu', { organizationName: 'Rückruf GmbH' });
    const orgId = owner.user.memberships[0].orgId;
    await confirmEmail(env, owner.user.id);
    const wrongToken = await invite(orgId, 'wrong-person@takeover.example.eu', 'admin', owner.accessToken);
    await invite(orgId, 'right-person@takeover.example.eu', 'member', owner.accessToken);

    const open = await http.get(`/v1/orgs/${orgId}/invitations?limit=1`, owner.accessToken);
    expect(open.status).toBe(200);
    expect(open.body.data).toEqual([expect.objectContaining({ orgId, email: 'right-person@takeover.example.eu', role: 'member', invitedBy: owner.user.id })]);
    const rest = await http.get(`/v1/orgs/${orgId}/invitations?limit=1&cursor=${open.body.nextCursor}`, owner.accessToken);
    const wrong = rest.body.data[0];
    expect(wrong).toMatchObject({ email: 'wrong-person@takeover.example.eu', role: 'admin' });
    expect(rest.body.nextCursor).toBeNull();

    // A member may neither see nor revoke them; a stranger does not even see the organisation.
    const member = await register('member@takeover.example.eu');
    expect((await http.post('/v1/invitations/accept', { token: await invite(orgId, 'member@takeover.example.eu', 'member', owner.accessToken) }, member.accessToken)).status).toBe(200);
    expectProblem(await http.get(`/v1/orgs/${orgId}/invitations`, member.accessToken), 403);
    expectProblem(await http.delete(`/v1/orgs/${orgId}/invitations/${wrong.id}`, member.accessToken), 403);

    expect((await http.delete(`/v1/orgs/${orgId}/invitations/${wrong.id}`, owner.accessToken)).status).toBe(204);
    expectProblem(await http.delete(`/v1/orgs/${orgId}/invitations/${wrong.id}`, owner.accessToken), 404);
    const wrongPerson = await register('wrong-person@takeover.example.eu');
    expectProblem(await http.post('/v1/invitations/accept', { token: wrongToken }, wrongPerson.accessToken), 400, ['token']);
    expect((await http.get(`/v1/orgs/${orgId}/invitations`, owner.accessToken)).body.data.map((i: { email: string }) => i.email)).toEqual(['right-person@takeover.example.eu']);
  });

  it("resetting the password of a never-verified account ends the API keys its registrant made (a squatted address) and restores the EU-only default", async () => {
    // Someone registers the address before its owner does and keeps an API key for its private workspace.
    const squatter = await register('victim@takeover.example.eu');
    const key = await http.post('/v1/me/api-keys', { name: 'backdoor', workspace: 'private' }, squatter.accessToken);
    expect(key.status).toBe(201);
    expect((await http.get('/v1/me', key.body.key)).status).toBe(200);
    // And lets the account's prompts leave the EU.
    expect((await http.patch('/v1/me/settings', { restrictToEu: false }, squatter.accessToken)).status).toBe(200);

    // The owner of the address takes the account over through the reset link mailed to them.
    expect((await http.post('/v1/auth/password/forgot', { email: 'victim@takeover.example.eu' })).status).toBe(202);
    const { resetToken } = (await lastEvent<{ userId: string; resetToken: string }>(env, 'identity.password.reset-requested', (e) => e.data.userId === squatter.user.id)).data;
    expect((await http.post('/v1/auth/password/reset', { token: resetToken, password: 'Meine eigene Wiese 2027' })).status).toBe(204);

    expectProblem(await http.get('/v1/me', key.body.key), 401);
    expectProblem(await http.post('/v1/auth/refresh', { refreshToken: squatter.refreshToken }), 401);
    const owner = await http.post('/v1/auth/login', { email: 'victim@takeover.example.eu', password: 'Meine eigene Wiese 2027' });
    expect(owner.status).toBe(200);
    expect((await http.get('/v1/me/api-keys', owner.body.accessToken)).body.data).toEqual([]);
    const me = (await http.get('/v1/me', owner.body.accessToken)).body;
    expect({ emailVerified: me.emailVerified, restrictToEu: me.settings.restrictToEu }).toEqual({ emailVerified: true, restrictToEu: true });
    // Chat's routing replica hears of it: the newest residency event of the account is the restored default.
    expect((await lastEvent(env, 'identity.user.residency-set', (e: { data: { userId: string } }) => e.data.userId === squatter.user.id)).data).toEqual({ userId: squatter.user.id, restrictToEu: true });
    // The owner's sign-in answer, carrying their tokens, is kept by no cache.
    expect(owner.headers.get('cache-control')).toBe('no-store');
  });

  it.each([
    ['', false],
    [', also after proving their own password by a reset before the move', true],
  ])("ends what a squatter set up also when they moved their own account to the owner's address and the owner clicked the new address's link%s", async (_, provenBefore) => {
    const at = provenBefore ? 'proven' : 'plain';
    let ownReset: string | undefined;
    const squatter = await register(`own-address-${at}@takeover.example.eu`);
    await confirmEmail(env, squatter.user.id);
    if (provenBefore) {
      // A reset of their own address's password proves that address, not the one the account moves to.
      expect((await http.post('/v1/auth/password/forgot', { email: `own-address-${at}@takeover.example.eu` })).status).toBe(202);
      ownReset = (await lastEvent<{ userId: string; resetToken: string }>(env, 'identity.password.reset-requested', (e) => e.data.userId === squatter.user.id)).data.resetToken;
      expect((await http.post('/v1/auth/password/reset', { token: ownReset, password: PASSWORD })).status).toBe(204);
      Object.assign(squatter, (await http.post('/v1/auth/login', { email: `own-address-${at}@takeover.example.eu`, password: PASSWORD })).body);
    }
    const key = await http.post('/v1/me/api-keys', { name: 'backdoor', workspace: 'private' }, squatter.accessToken);
    expect(key.status).toBe(201);
    expect((await http.patch('/v1/me/settings', { restrictToEu: false }, squatter.accessToken)).status).toBe(200);
    // Their own identity provider linked to the account.
    await env.sql(`INSERT INTO identity.sso_identities (provider, subject, user_id) VALUES ('squatters-idp', $2, $1)`, [squatter.user.id, `sq-${at}`]);
    // Moved to the owner's address; the owner, mailed "confirm your new address", clicks.
    expect((await http.post('/v1/me/email', { email: `moved-victim-${at}@takeover.example.eu`, password: PASSWORD }, squatter.accessToken)).status).toBe(202);
    const { token } = (await lastEvent<{ userId: string; token: string }>(env, 'identity.user.email-change-requested', (e) => e.data.userId === squatter.user.id)).data;
    expect((await http.post('/v1/auth/verify-email', { token })).status).toBe(204);

    // The click proved the address, not the password: the owner's first reset takes back what the squatter set up.
    expect((await http.post('/v1/auth/password/forgot', { email: `moved-victim-${at}@takeover.example.eu` })).status).toBe(202);
    const { resetToken } = (await lastEvent<{ userId: string; resetToken: string }>(env, 'identity.password.reset-requested', (e) => e.data.userId === squatter.user.id && e.data.resetToken !== ownReset)).data;
    expect((await http.post('/v1/auth/password/reset', { token: resetToken, password: 'Meine eigene Wiese 2027' })).status).toBe(204);
    expectProblem(await http.get('/v1/me', key.body.key), 401);
    expect(await env.sql(`SELECT provider FROM identity.sso_identities WHERE user_id = $1`, [squatter.user.id])).toEqual([]);
    // Where the squatter signed in from is no longer a place of the account's (a guess from there meets the lockout).
    expect(await env.sql(`SELECT 1 FROM identity.sessions WHERE user_id = $1 AND ip IS NOT NULL UNION ALL SELECT 1 FROM identity.login_audit WHERE user_id = $1 AND succeeded`, [squatter.user.id])).toEqual([]);
    const owner = (await http.post('/v1/auth/login', { email: `moved-victim-${at}@takeover.example.eu`, password: 'Meine eigene Wiese 2027' })).body;
    expect((await http.get('/v1/me', owner.accessToken)).body.settings.restrictToEu).toBe(true);
  });

  it('ends what a squatter set up also when the owner clicked the confirmation link first: the first reset of the password chosen at registration', async () => {
    const squatter = await register('confirmed-victim@takeover.example.eu');
    const key = await http.post('/v1/me/api-keys', { name: 'backdoor', workspace: 'private' }, squatter.accessToken);
    expect(key.status).toBe(201);
    expect((await http.patch('/v1/me/settings', { restrictToEu: false }, squatter.accessToken)).status).toBe(200);
    // The owner gets the confirmation mail the squatter's registration sent, and clicks it: the address is confirmed,
    // the password is still the squatter's.
    await confirmEmail(env, squatter.user.id);
    expect((await http.post('/v1/auth/refresh', { refreshToken: squatter.refreshToken })).status).toBe(200);

    expect((await http.post('/v1/auth/password/forgot', { email: 'confirmed-victim@takeover.example.eu' })).status).toBe(202);
    const { resetToken } = (await lastEvent<{ userId: string; resetToken: string }>(env, 'identity.password.reset-requested', (e) => e.data.userId === squatter.user.id)).data;
    expect((await http.post('/v1/auth/password/reset', { token: resetToken, password: 'Meine eigene Wiese 2027' })).status).toBe(204);
    expectProblem(await http.get('/v1/me', key.body.key), 401);
    const owner = (await http.post('/v1/auth/login', { email: 'confirmed-victim@takeover.example.eu', password: 'Meine eigene Wiese 2027' })).body;
    expect((await http.get('/v1/me', owner.accessToken)).body.settings.restrictToEu).toBe(true);

    // A key the owner makes with the password they chose through the link survives their next reset (integrations go on).
    const own = await http.post('/v1/me/api-keys', { name: 'integration', workspace: 'private' }, owner.accessToken);
    expect((await http.post('/v1/auth/password/forgot', { email: 'confirmed-victim@takeover.example.eu' })).status).toBe(202);
    const again = (await lastEvent<{ userId: string; resetToken: string }>(env, 'identity.password.reset-requested', (e) => e.data.userId === squatter.user.id && e.data.resetToken !== resetToken)).data.resetToken;
    expect((await http.post('/v1/auth/password/reset', { token: again, password: 'Noch eine Wiese 2028' })).status).toBe(204);
    expect((await http.get('/v1/me', own.body.key)).status).toBe(200);
  });

  it('refuses an API key, a setting or an organisation change asked for with a session a password reset ended meanwhile (401), instead of letting it outlive the reset', async () => {
    const user = await register('ended-session@takeover.example.eu', { organizationName: 'Sitzung GmbH' });
    const orgId = user.user.memberships[0].orgId;
    const actor = { userId: user.user.id, platformRoles: [] as [], sessionId: (JSON.parse(Buffer.from(user.accessToken.split('.')[1], 'base64url').toString()) as { sid: string }).sid };
    expect(await rpc.call(IdentityRpc.createApiKey, { name: 'while live', workspace: 'private' }, { actor })).toMatchObject({ name: 'while live' });
    expect((await http.post('/v1/auth/password/forgot', { email: 'ended-session@takeover.example.eu' })).status).toBe(202);
    const { resetToken } = (await lastEvent<{ userId: string; resetToken: string }>(env, 'identity.password.reset-requested', (e) => e.data.userId === user.user.id)).data;
    expect((await http.post('/v1/auth/password/reset', { token: resetToken, password: 'Meine eigene Wiese 2027' })).status).toBe(204);
    // The gateway had let the request through before the reset ended the session (its token still looked valid).
    await expect(rpc.call(IdentityRpc.createApiKey, { name: 'too late', workspace: 'private' }, { actor })).rejects.toMatchObject({ status: 401 });
    await expect(rpc.call(IdentityRpc.updateSettings, { restrictToEu: false }, { actor })).rejects.toMatchObject({ status: 401 });
    // Nor does an organisation hear from it: no invitation in the owner's name, no policy, no new organisation.
    await expect(rpc.call(IdentityRpc.createInvitation, { orgId, email: 'accomplice@takeover.example.eu', role: 'admin' }, { actor })).rejects.toMatchObject({ status: 401 });
    await expect(rpc.call(IdentityRpc.updateOrgPolicy, { orgId, euOnly: false }, { actor })).rejects.toMatchObject({ status: 401 });
    await expect(rpc.call(IdentityRpc.createOrg, { name: 'Hintertür AG' }, { actor })).rejects.toMatchObject({ status: 401 });
    // Each before anything else it would say (allowed, these would be 404 and 409).
    await expect(rpc.call(IdentityRpc.revokeInvitation, { orgId, invitationId: '00000000-0000-4000-8000-000000000000' }, { actor })).rejects.toMatchObject({ status: 401 });
    await expect(rpc.call(IdentityRpc.removeMember, { orgId, userId: user.user.id }, { actor })).rejects.toMatchObject({ status: 401 });
    await expect(rpc.call(IdentityRpc.acceptInvitation, { token: 'a-token-of-no-invitation-at-all-0000000000' }, { actor })).rejects.toMatchObject({ status: 401 });
    const owner = (await http.post('/v1/auth/login', { email: 'ended-session@takeover.example.eu', password: 'Meine eigene Wiese 2027' })).body;
    expect((await http.get(`/v1/orgs/${orgId}`, owner.accessToken)).body.policy.euOnly).toBe(true);
    expect((await http.get(`/v1/orgs/${orgId}/invitations`, owner.accessToken)).body.data).toEqual([]);
    expect((await http.get('/v1/me', owner.accessToken)).body.memberships).toHaveLength(1);
  });

  it("erasing one's data in an organisation's workspace deletes the keys for it, so a later invitation does not revive them", async () => {
    const owner = await register('erasure-owner@takeover.example.eu', { organizationName: 'Löschung AG' });
    const orgId = owner.user.memberships[0].orgId;
    const member = await register('erasure-member@takeover.example.eu');
    await confirmEmail(env, owner.user.id);
    await http.post('/v1/invitations/accept', { token: await invite(orgId, 'erasure-member@takeover.example.eu', 'member', owner.accessToken) }, member.accessToken);
    const orgKey = await http.post('/v1/me/api-keys', { name: 'Team', workspace: orgId }, member.accessToken);
    const privateKey = await http.post('/v1/me/api-keys', { name: 'Privat', workspace: 'private' }, member.accessToken);
    expect((await http.get('/v1/me', orgKey.body.key)).status).toBe(200);

    const erased = await rpc.call(IdentityPrivacy.erase, { userId: member.user.id, scope: orgId });
    expect(erased.affected).toMatchObject({ memberships: 1 });

    const keys = await http.get('/v1/me/api-keys', member.accessToken);
    expect(keys.body.data.map((k: { id: string }) => k.id)).toEqual([privateKey.body.id]);
    await http.post('/v1/invitations/accept', { token: await invite(orgId, 'erasure-member@takeover.example.eu', 'member', owner.accessToken) }, member.accessToken);
    expect((await http.get(`/v1/orgs/${orgId}`, member.accessToken)).status).toBe(200);
    expectProblem(await http.get('/v1/me', orgKey.body.key), 401);
    expect((await http.get('/v1/me', privateKey.body.key)).status).toBe(200);
  });

  it('a malformed single sign-on provider is named as the path parameter it is, not as a body field', async () => {
    const res = await http.get('/v1/auth/sso/NOT_A_PROVIDER/start');
    expectProblem(res, 400, ['provider']);
    expect(res.body.detail).toMatch(/^Invalid path parameter: provider/);
  });

  it('sends no invitation in the name of an address its account has not confirmed (a mail to anyone, signed by anyone)', async () => {
    const owner = await register('unconfirmed@takeover.example.eu', { organizationName: 'Irgendwer GmbH' });
    const orgId = owner.user.memberships[0].orgId;
    const refused = await http.post(`/v1/orgs/${orgId}/invitations`, { email: 'victim@takeover.example.eu', role: 'member' }, owner.accessToken);
    expect(refused.status).toBe(403);
    expect(refused.body.type).toBe('https://ally.eu/problems/email-not-verified');
    await confirmEmail(env, owner.user.id);
    expect((await http.post(`/v1/orgs/${orgId}/invitations`, { email: 'victim@takeover.example.eu', role: 'member' }, owner.accessToken)).status).toBe(201);
  });

  it("ends an admin's invitations also when the removal races the invitation, or when they erase their data for the organisation", async () => {
    const owner = await register('race-owner@takeover.example.eu', { organizationName: 'Wettlauf KG' });
    const orgId = owner.user.memberships[0].orgId;
    await confirmEmail(env, owner.user.id);
    for (let round = 0; round < 4; round++) {
      const email = `race-admin-${round}@takeover.example.eu`;
      const admin = await register(email);
      await confirmEmail(env, admin.user.id);
      await http.post('/v1/invitations/accept', { token: await invite(orgId, email, 'admin', owner.accessToken) }, admin.accessToken);
      const altEmail = `race-alt-${round}@takeover.example.eu`;
      const [sent, removed] = await Promise.all([
        http.post(`/v1/orgs/${orgId}/invitations`, { email: altEmail, role: 'admin' }, admin.accessToken),
        http.delete(`/v1/orgs/${orgId}/members/${admin.user.id}`, owner.accessToken),
      ]);
      expect(removed.status).toBe(204);
      if (sent.status !== 201) continue; // the removal came first: no invitation at all
      // Its mail went out before the removal, or went with the invitation (nobody is mailed a link that no longer works).
      const mail = await waitFor(async () => {
        const [row] = await env.sql<{ sent: boolean }>(`SELECT sent_at IS NOT NULL AS sent FROM identity.outbox WHERE type = 'identity.invitation.created' AND payload->'data'->>'invitationId' = $1`, [sent.body.id]);
        return !row ? 'dropped' : row.sent ? 'sent' : undefined;
      }, 'the invitation mail to go out or be dropped');
      // Dropped: the invitation went with the removal (the link would not work either).
      if (mail === 'dropped') {
        expect(await env.sql(`SELECT 1 FROM identity.invitations WHERE id = $1`, [sent.body.id])).toEqual([]);
        continue;
      }
      const { token } = (await lastEvent<{ invitationId: string; token: string }>(env, 'identity.invitation.created', (e) => e.data.invitationId === sent.body.id)).data;
      const alt = await register(altEmail);
      expectProblem(await http.post('/v1/invitations/accept', { token }, alt.accessToken), 400, ['token']);
    }

    // Erasing one's data for the organisation ends the membership, and with it the invitations one sent.
    const admin = await register('erasing-admin@takeover.example.eu');
    await confirmEmail(env, admin.user.id);
    await http.post('/v1/invitations/accept', { token: await invite(orgId, 'erasing-admin@takeover.example.eu', 'admin', owner.accessToken) }, admin.accessToken);
    const token = await invite(orgId, 'erasing-alt@takeover.example.eu', 'admin', admin.accessToken);
    await rpc.call(IdentityPrivacy.erase, { userId: admin.user.id, scope: orgId });
    const alt = await register('erasing-alt@takeover.example.eu');
    expectProblem(await http.post('/v1/invitations/accept', { token }, alt.accessToken), 400, ['token']);
  });

  it('a password reset ends every other reset link of the account, also one asked for at the same moment', async () => {
    const user = await register('two-links@takeover.example.eu');
    await Promise.all(['two-links@takeover.example.eu', 'TWO-LINKS@takeover.example.eu'].map((email) => http.post('/v1/auth/password/forgot', { email })));
    const events = await waitFor(async () => {
      const found: string[] = [];
      const jsm = await jetstream(await env.nats()).jetstreamManager();
      const stream = eventsStreamName(env.prefix);
      const info = await jsm.streams.info(stream);
      for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
        const msg = await jsm.streams.getMessage(stream, { seq }).catch(() => null);
        const event = msg?.subject === env.subject('ally.evt.identity.password.reset-requested') ? msg.json<{ data: { userId: string; resetToken: string } }>() : undefined;
        if (event?.data.userId === user.user.id) found.push(event.data.resetToken);
      }
      return found.length === 2 ? found : undefined;
    }, 'both reset mails');
    const results = [];
    for (const [i, token] of events.entries()) results.push((await http.post('/v1/auth/password/reset', { token, password: `Zweite Wiese am Bach 20${30 + i}` })).status);
    // The first link asked for was superseded by the second, or used and so ending it: never two resets.
    expect(results.filter((s) => s === 204)).toHaveLength(1);
  });

  it("ends a member's API key for the organisation also when it was created as they were removed, and two admins removing each other leave one", async () => {
    const owner = await register('keys-owner@takeover.example.eu', { organizationName: 'Schlüssel KG' });
    const orgId = owner.user.memberships[0].orgId;
    await confirmEmail(env, owner.user.id);
    for (let round = 0; round < 4; round++) {
      const email = `keys-member-${round}@takeover.example.eu`;
      const member = await register(email);
      await http.post('/v1/invitations/accept', { token: await invite(orgId, email, 'member', owner.accessToken) }, member.accessToken);
      const [created, removed] = await Promise.all([
        http.post('/v1/me/api-keys', { name: 'Team', workspace: orgId }, member.accessToken),
        http.delete(`/v1/orgs/${orgId}/members/${member.user.id}`, owner.accessToken),
      ]);
      expect(removed.status).toBe(204);
      if (created.status !== 201) continue; // the removal came first
      // Back in the organisation, the key made in the race stays dead.
      await http.post('/v1/invitations/accept', { token: await invite(orgId, email, 'member', owner.accessToken) }, member.accessToken);
      expect((await http.get('/v1/me', created.body.key)).status).toBe(401);
    }

    const [a, b] = [await register('keys-admin-a@takeover.example.eu'), await register('keys-admin-b@takeover.example.eu')];
    await http.post('/v1/invitations/accept', { token: await invite(orgId, 'keys-admin-a@takeover.example.eu', 'admin', owner.accessToken) }, a.accessToken);
    await http.post('/v1/invitations/accept', { token: await invite(orgId, 'keys-admin-b@takeover.example.eu', 'admin', owner.accessToken) }, b.accessToken);
    const answers = await Promise.all([
      http.delete(`/v1/orgs/${orgId}/members/${b.user.id}`, a.accessToken),
      http.delete(`/v1/orgs/${orgId}/members/${a.user.id}`, b.accessToken),
    ]);
    expect(answers.map((r) => r.status).sort()).toEqual([204, 404]);
    const left = await env.sql(`SELECT user_id FROM identity.memberships WHERE org_id = $1 AND user_id = ANY($2::uuid[])`, [orgId, [a.user.id, b.user.id]]);
    expect(left).toHaveLength(1);

    // Two owners leaving at the same moment: one goes, the other stays the organisation's owner.
    const second = await register('keys-owner-2@takeover.example.eu');
    await http.post('/v1/invitations/accept', { token: await invite(orgId, 'keys-owner-2@takeover.example.eu', 'member', owner.accessToken) }, second.accessToken);
    await env.sql(`UPDATE identity.memberships SET role = 'owner' WHERE org_id = $1 AND user_id = $2`, [orgId, second.user.id]);
    const leaving = await Promise.all([
      http.delete(`/v1/orgs/${orgId}/members/${owner.user.id}`, owner.accessToken),
      http.delete(`/v1/orgs/${orgId}/members/${second.user.id}`, second.accessToken),
    ]);
    expect(leaving.map((r) => r.status).sort()).toEqual([204, 409]);
    expect(await env.sql(`SELECT 1 FROM identity.memberships WHERE org_id = $1 AND role = 'owner'`, [orgId])).toHaveLength(1);
  });
});
