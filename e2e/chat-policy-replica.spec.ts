import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { ChatRpc, createEnvelope, IdentityRpc, privacyRpcs } from '@ally/contracts';
import { chatService } from '@ally/chat';
import { identityService } from '@ally/identity';
import { RpcClient } from '@ally/messaging';
import { startOpenAIEmulator, type OpenAIEmulator } from '@ally/emulators';
import { confirmEmail, createTestEnv, lastEvent, publishEvent, waitFor, type TestEnv } from '@ally/testing';
import { chatEnv } from './service-env.js';

/**
 * identity's events reach chat's replica in any order (redeliveries, several
 * chat replicas sharing the consumer): a late older event never undoes a newer one.
 */
describe("chat's policy replica", () => {
  let env: TestEnv;
  let llm: OpenAIEmulator;
  let seq = 0;
  const at = (secondsAgo: number) => new Date(Date.now() - secondsAgo * 1000).toISOString();
  /** Publishes identity's event as it happened `occurredAt`; waits until chat has applied it (its inbox row). */
  const deliver = async (type: string, data: Record<string, unknown>, occurredAt: string) => {
    const envelope = { ...createEnvelope({ type, source: 'identity', data }), occurredAt };
    await publishEvent(env, envelope);
    await waitFor(async () => ((await env.sql(`SELECT 1 FROM chat.inbox WHERE event_id = $1`, [envelope.id])).length ? true : undefined), `${type} #${++seq} to be applied`);
  };
  const settings = (userId: string, restrictToEu: boolean) => ({ userId, restrictToEu });

  beforeAll(async () => {
    env = await createTestEnv();
    llm = await startOpenAIEmulator();
    // An event that disagrees with a newer row makes chat ask identity what holds now.
    await env.start(identityService);
    await env.start(chatService, chatEnv(llm, { QUOTA_PROVIDER: 'none' }));
  });

  afterAll(async () => {
    await env?.close();
    await llm?.close();
  });

  it('keeps the newest restrictToEu, organisation policy and membership, whatever the order of arrival', async () => {
    const [user, org] = [randomUUID(), randomUUID()];
    // Turned off, then on again: the "on" arrives first.
    await deliver('identity.user.residency-set', settings(user, true), at(1));
    await deliver('identity.user.residency-set', settings(user, false), at(2));
    expect(await env.sql(`SELECT restrict_to_eu FROM chat.user_settings WHERE user_id = $1`, [user])).toEqual([{ restrict_to_eu: true }]);

    const policy = (euOnly: boolean) => ({ orgId: org, euOnly, allowedModels: null, chatRetentionDays: null, blockedTerms: [] });
    await deliver('identity.organization.policy-changed', policy(true), at(1));
    await deliver('identity.organization.policy-changed', policy(false), at(2));
    expect(await env.sql(`SELECT eu_only FROM chat.org_policies WHERE org_id = $1`, [org])).toEqual([{ eu_only: true }]);

    // Added, then removed: the removal arrives first, the late addition must not bring the member back.
    await deliver('identity.member.removed', { orgId: org, userId: user, memberCount: 1 }, at(1));
    await deliver('identity.member.added', { orgId: org, userId: user, role: 'member', memberCount: 2 }, at(2));
    expect(await env.sql(`SELECT 1 FROM chat.memberships WHERE org_id = $1 AND user_id = $2`, [org, user])).toEqual([]);
    // Added again later: a member again.
    await deliver('identity.member.added', { orgId: org, userId: user, role: 'admin', memberCount: 2 }, at(0));
    expect(await env.sql(`SELECT role FROM chat.memberships WHERE org_id = $1 AND user_id = $2`, [org, user])).toEqual([{ role: 'admin' }]);
  });

  it('takes refreshes of one user in turn, each reading identity only once the one before has written: an older read is never written last', async () => {
    const rpc = new RpcClient(await env.nats(), env.prefix);
    await rpc.connect();
    const holder = await env.connect();
    try {
      const { user } = await rpc.call(IdentityRpc.register, { email: 'tilda@example.eu', password: 'Kraniche über dem Bodden', firstName: 'Tilda', lastName: 'Turn' });
      const actor = { userId: user.id, platformRoles: [] as [] };
      const restriction = async () => (await env.sql(`SELECT restrict_to_eu FROM chat.user_settings WHERE user_id = $1`, [user.id]))[0]?.restrict_to_eu as boolean | undefined;
      await waitFor(async () => ((await restriction()) === true ? true : undefined), 'the registration to reach chat');
      // A refresh of hers is under way (it holds her turn); the next one waits for it before it asks identity.
      await holder.query('BEGIN');
      await holder.query(`SELECT pg_advisory_xact_lock(hashtext($1))`, [`replica-refresh:user:${user.id}`]);
      let done = false;
      const refreshing = rpc.call(ChatRpc.refreshPolicy, {}, { actor }).then(() => (done = true));
      await rpc.call(IdentityRpc.updateSettings, { restrictToEu: false }, { actor });
      await new Promise((r) => setTimeout(r, 300));
      expect(done).toBe(false);
      await holder.query('COMMIT');
      await refreshing;
      // It read identity after the change (asked before it, it would have written "on" over it).
      expect(await restriction()).toBe(false);
    } finally {
      await holder.end();
      await rpc.close();
    }
  });

  it("follows identity's own residency events, which carry the setting and nothing else of the user (never the registration's address or token)", async () => {
    const rpc = new RpcClient(await env.nats(), env.prefix);
    await rpc.connect();
    try {
      const { user } = await rpc.call(IdentityRpc.register, { email: 'lene@example.eu', password: 'Kraniche über dem Bodden', firstName: 'Lene', lastName: 'Voss' });
      const restriction = async () => (await env.sql(`SELECT restrict_to_eu FROM chat.user_settings WHERE user_id = $1`, [user.id]))[0]?.restrict_to_eu as boolean | undefined;
      await waitFor(async () => ((await restriction()) === true ? true : undefined), 'the registration to reach chat');
      await rpc.call(IdentityRpc.updateSettings, { restrictToEu: false }, { actor: { userId: user.id, platformRoles: [] } });
      await waitFor(async () => ((await restriction()) === false ? true : undefined), 'the change to reach chat');

      const residency = await lastEvent(env, 'identity.user.residency-set', (e) => e.data.userId === user.id);
      expect(residency.data).toEqual({ userId: user.id, restrictToEu: false });
      // notify's events about the same moments: chat's consumer never took them in.
      for (const type of ['identity.user.registered', 'identity.user.settings-changed']) {
        const event = await lastEvent(env, type, (e) => e.data.userId === user.id);
        expect(event.data.email).toBe('lene@example.eu');
        expect(await env.sql(`SELECT consumer FROM chat.inbox WHERE event_id = $1`, [event.id])).toEqual([]);
      }
    } finally {
      await rpc.close();
    }
  });

  it("takes a change whose event is dated before the row it meets from identity, not the row (chat's own read of identity raced the change, or its clock runs ahead)", async () => {
    const rpc = new RpcClient(await env.nats(), env.prefix);
    await rpc.connect();
    try {
      const { user } = await rpc.call(IdentityRpc.register, { email: 'ruth@example.eu', password: 'Kraniche über dem Bodden', firstName: 'Ruth', lastName: 'Kahl' });
      const actor = { userId: user.id, platformRoles: [] as [] };
      await rpc.call(IdentityRpc.updateSettings, { restrictToEu: false }, { actor });
      await rpc.call(IdentityRpc.updateSettings, { restrictToEu: true }, { actor });
      // chat read "off" and dated it after the moment identity stamped the switch back on.
      await env.sql(`INSERT INTO chat.user_settings (user_id, restrict_to_eu, updated_at) VALUES ($1, false, now() + interval '1 minute')
                     ON CONFLICT (user_id) DO UPDATE SET restrict_to_eu = false, updated_at = now() + interval '1 minute'`, [user.id]);
      await deliver('identity.user.residency-set', settings(user.id, true), at(0));
      expect(await env.sql(`SELECT restrict_to_eu FROM chat.user_settings WHERE user_id = $1`, [user.id])).toEqual([{ restrict_to_eu: true }]);
    } finally {
      await rpc.close();
    }
  });

  it("ends a membership whose removal is dated before the row chat wrote from its own read of identity (its clock running ahead), and keeps one identity still has", async () => {
    const rpc = new RpcClient(await env.nats(), env.prefix);
    await rpc.connect();
    try {
      const { user } = await rpc.call(IdentityRpc.register, { email: 'mira@example.eu', password: 'Kraniche über dem Bodden', firstName: 'Mira', lastName: 'Mahl' });
      // chat read the membership from identity and dated it by a clock a minute ahead; identity removed it meanwhile.
      const gone = randomUUID();
      await env.sql(`INSERT INTO chat.memberships (org_id, user_id, role, updated_at) VALUES ($1, $2, 'member', now() + interval '1 minute')`, [gone, user.id]);
      await deliver('identity.member.removed', { orgId: gone, userId: user.id, memberCount: 1 }, at(0));
      expect(await env.sql(`SELECT 1 FROM chat.memberships WHERE org_id = $1 AND user_id = $2`, [gone, user.id])).toEqual([]);
      // A membership identity has (a re-invitation after the removal): it stays.
      await confirmEmail(env, user.id);
      const org = await rpc.call(IdentityRpc.createOrg, { name: 'Mahl & Söhne' }, { actor: { userId: user.id, platformRoles: [] } });
      await env.sql(`INSERT INTO chat.memberships (org_id, user_id, role, updated_at) VALUES ($1, $2, 'owner', now() + interval '1 minute')
                     ON CONFLICT (org_id, user_id) DO UPDATE SET updated_at = now() + interval '1 minute'`, [org.id, user.id]);
      await deliver('identity.member.removed', { orgId: org.id, userId: user.id, memberCount: 0 }, at(0));
      expect(await env.sql(`SELECT role FROM chat.memberships WHERE org_id = $1 AND user_id = $2`, [org.id, user.id])).toEqual([{ role: 'owner' }]);
    } finally {
      await rpc.close();
    }
  });

  it('brings nothing of an erased subject back when an event about them arrives after the erasure', async () => {
    const rpc = new RpcClient(await env.nats(), env.prefix);
    await rpc.connect();
    try {
      const [user, org] = [randomUUID(), randomUUID()];
      await deliver('identity.user.residency-set', settings(user, false), at(3));
      await rpc.call(privacyRpcs('chat').erase, { userId: user, scope: 'all' });
      expect(await env.sql(`SELECT 1 FROM chat.user_settings WHERE user_id = $1`, [user])).toEqual([]);
      // Late, redelivered or reordered: the registration, a settings change, a membership.
      await deliver('identity.user.residency-set', settings(user, true), at(2));
      await deliver('identity.user.residency-set', settings(user, false), at(1));
      await deliver('identity.member.added', { orgId: org, userId: user, role: 'member', memberCount: 2 }, at(1));
      // A restriction they filed while the erasure ran.
      await deliver('privacy.subject.restricted', { requestId: randomUUID(), userId: user, scope: 'all' }, at(4));
      expect(await env.sql(`SELECT 1 FROM chat.restrictions WHERE user_id = $1`, [user])).toEqual([]);
      expect(await env.sql(`SELECT 1 FROM chat.user_settings WHERE user_id = $1`, [user])).toEqual([]);
      expect(await env.sql(`SELECT 1 FROM chat.memberships WHERE user_id = $1`, [user])).toEqual([]);
    } finally {
      await rpc.close();
    }
  });

  it("makes the member an erasure hands an organisation to its owner in chat's replica too (they manage it there)", async () => {
    const rpc = new RpcClient(await env.nats(), env.prefix);
    await rpc.connect();
    try {
      const password = 'Kraniche über dem Bodden';
      const { user: owner } = await rpc.call(IdentityRpc.register, { email: 'nachfolge-owner@example.eu', password, firstName: 'Alma', lastName: 'Berg', organizationName: 'Nachfolge GmbH' });
      const { user: member } = await rpc.call(IdentityRpc.register, { email: 'nachfolge-member@example.eu', password, firstName: 'Ben', lastName: 'Berg' });
      const orgId = owner.memberships[0].orgId;
      await confirmEmail(env, owner.id);
      const invitation = await rpc.call(IdentityRpc.createInvitation, { orgId, email: member.email, role: 'member' }, { actor: { userId: owner.id, platformRoles: [] } });
      const { token } = (await lastEvent<{ invitationId: string; token: string }>(env, 'identity.invitation.created', (e) => e.data.invitationId === invitation.id)).data;
      await rpc.call(IdentityRpc.acceptInvitation, { token }, { actor: { userId: member.id, platformRoles: [] } });
      const roleInChat = async () => (await env.sql<{ role: string }>(`SELECT role FROM chat.memberships WHERE org_id = $1 AND user_id = $2`, [orgId, member.id]))[0]?.role;
      await waitFor(async () => ((await roleInChat()) === 'member' ? true : undefined), 'chat to know the member');

      // The only owner's data for the organisation is erased: identity makes the member its owner.
      await rpc.call(privacyRpcs('identity').erase, { userId: owner.id, scope: orgId });
      await waitFor(async () => ((await roleInChat()) === 'owner' ? true : undefined), "chat's replica to know the new owner");
    } finally {
      await rpc.close();
    }
  });
});
