import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { IdentityRpc, PrivacyRpc } from '@ally/contracts';
import { waitFor } from '@ally/testing';
import { startPlatformWorld, type PlatformWorld } from './platform-world.js';

const PASSWORD = 'Kraniche über dem Watt';

/**
 * A restriction of one workspace (Art. 18) holds back from retention only that
 * workspace's rows: the subject's other workspaces keep to their periods, and
 * so does what belongs to the account rather than a workspace (login audit).
 */
describe('retention under a restriction of one workspace', () => {
  let world: PlatformWorld;

  beforeAll(async () => {
    world = await startPlatformWorld();
  });

  afterAll(async () => {
    await world?.close();
  });

  it("spares the restricted workspace's chat history and usage, and deletes the other workspace's and the account's login audit", async () => {
    const { env, rpc } = world;
    const { user } = await rpc.call(IdentityRpc.register, { email: 'scoped@example.eu', password: PASSWORD, firstName: 'Sina', lastName: 'Sperr' });
    const compliance = { userId: randomUUID(), platformRoles: ['compliance' as const] };
    const org = randomUUID();
    await rpc.call(PrivacyRpc.createRequest, { type: 'restriction', scope: 'private' }, { actor: { userId: user.id, platformRoles: [] } });

    const conversations = { private: randomUUID(), org: randomUUID() };
    for (const [workspace, id] of [['private', conversations.private], [org, conversations.org]]) {
      await env.sql(`INSERT INTO chat.conversations (id, user_id, workspace, updated_at) VALUES ($1, $2, $3, now() - interval '400 days')`, [id, user.id, workspace]);
    }
    for (const workspace of [`private:${user.id}`, org]) {
      await env.sql(
        `INSERT INTO billing.ledger (message_id, workspace, user_id, model, deployment, prompt_tokens, completion_tokens, tokens, cost, period, meter_status, created_at)
         VALUES ($1, $2, $3, 'gpt-4o-mini', 'd', 1, 0, 1, 0.01, '2020-01', 'reported', now() - interval '5 years')`,
        [randomUUID(), workspace, user.id],
      );
    }
    // Someone else's private history in the same state: their own period holds, whoever else restricted 'private'.
    const othersPrivate = randomUUID();
    await env.sql(`INSERT INTO chat.conversations (id, user_id, workspace, updated_at) VALUES ($1, $2, 'private', now() - interval '400 days')`, [othersPrivate, randomUUID()]);
    // Login audit belongs to the account: only a restriction of the whole account would keep it.
    await env.sql(`INSERT INTO identity.login_audit (user_id, ip, succeeded, method, occurred_at) VALUES ($1, '203.0.113.9', true, 'password', now() - interval '40 days')`, [user.id]);
    await rpc.call(PrivacyRpc.updateRetentionPolicies, { service: 'chat', category: 'chat-history', retentionDays: 365 }, { actor: compliance });

    const { id } = await rpc.call(PrivacyRpc.startRetentionRun, { dryRun: false, categories: ['chat-history', 'usage-ledger', 'login-audit'] }, { actor: compliance });
    const run = await waitFor(async () => {
      const r = await rpc.call(PrivacyRpc.getRetentionRun, { id }, { actor: compliance });
      return r.finishedAt ? r : undefined;
    }, 'the retention run', 30_000);
    expect(run.status).toBe('completed');
    expect(run.heldUsers).toBe(1);
    expect(run.results).toEqual([
      { service: 'billing', category: 'usage-ledger', affected: 1 },
      { service: 'chat', category: 'chat-history', affected: 2 },
      { service: 'identity', category: 'login-audit', affected: 1 },
    ]);
    expect(await env.sql(`SELECT id FROM chat.conversations WHERE user_id = $1`, [user.id])).toEqual([{ id: conversations.private }]);
    expect(await env.sql(`SELECT id FROM chat.conversations WHERE id = $1`, [othersPrivate])).toEqual([]);
    expect(await env.sql(`SELECT workspace FROM billing.ledger WHERE user_id = $1`, [user.id])).toEqual([{ workspace: `private:${user.id}` }]);
    expect(await env.sql(`SELECT 1 FROM identity.login_audit WHERE user_id = $1`, [user.id])).toEqual([]);
  });

  it("leaves a subject's private contract to its period when they restricted one organisation only", async () => {
    const { env, rpc } = world;
    const { user } = await rpc.call(IdentityRpc.register, { email: 'org-scoped@example.eu', password: PASSWORD, firstName: 'Otto', lastName: 'Ort' });
    const compliance = { userId: randomUUID(), platformRoles: ['compliance' as const] };
    await rpc.call(PrivacyRpc.createRequest, { type: 'restriction', scope: randomUUID() }, { actor: { userId: user.id, platformRoles: [] } });
    await env.sql(
      `INSERT INTO billing.subscriptions (workspace, stripe_subscription_id, plan, status, ended_at) VALUES ($1, 'sub_scoped_1', 'team', 'canceled', now() - interval '5 years')`,
      [`private:${user.id}`],
    );
    const { id } = await rpc.call(PrivacyRpc.startRetentionRun, { dryRun: true, categories: ['contract'] }, { actor: compliance });
    const run = await waitFor(async () => {
      const r = await rpc.call(PrivacyRpc.getRetentionRun, { id }, { actor: compliance });
      return r.finishedAt ? r : undefined;
    }, 'the retention run', 30_000);
    expect(run.status).toBe('completed');
    expect(run.results).toEqual([{ service: 'billing', category: 'contract', affected: 1 }]);
  });
});
