import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { privacyRetentionRpc } from '@ally/contracts';
import { chatService } from '@ally/chat';
import { startOpenAIEmulator, type OpenAIEmulator } from '@ally/emulators';
import { RpcClient } from '@ally/messaging';
import { AgeRetentionService } from '@ally/platform';
import { createTestEnv, type RunningService, type TestEnv } from '@ally/testing';
import { chatEnv } from './service-env.js';

/** An organisation's chat retention goes only through privacy's retention runs: never past a legal hold. */
describe("chat history past its organisation's retention", () => {
  let env: TestEnv;
  let llm: OpenAIEmulator;
  let chat: RunningService;
  let rpc: RpcClient;
  const org = randomUUID();
  const [held, free] = [randomUUID(), randomUUID()];
  const conversation = async (userId: string, workspace: string, daysAgo: number) => {
    const id = randomUUID();
    await env.sql(`INSERT INTO chat.conversations (id, user_id, workspace, updated_at) VALUES ($1, $2, $3, now() - make_interval(days => $4))`, [id, userId, workspace, daysAgo]);
    return id;
  };
  /** A message of `conversationId` written `daysAgo` (content never read here: any bytes). */
  const message = async (conversationId: string, userId: string, daysAgo: number) => {
    const id = randomUUID();
    await env.sql(`INSERT INTO chat.messages (id, conversation_id, user_id, role, content_enc, created_at) VALUES ($1, $2, $3, 'user', '\\x00', now() - make_interval(days => $4))`, [id, conversationId, userId, daysAgo]);
    return id;
  };
  const remainingMessages = async (ids: string[]) => (await env.sql<{ id: string }>(`SELECT id FROM chat.messages WHERE id = ANY($1::uuid[])`, [ids])).map((r) => r.id).sort();
  const remaining = async (ids: string[]) => (await env.sql<{ id: string }>(`SELECT id FROM chat.conversations WHERE id = ANY($1::uuid[])`, [ids])).map((r) => r.id).sort();

  beforeAll(async () => {
    env = await createTestEnv();
    llm = await startOpenAIEmulator();
    chat = await env.start(chatService, chatEnv(llm, { QUOTA_PROVIDER: 'none' }));
    rpc = new RpcClient(await env.nats(), env.prefix);
    await rpc.connect();
    await env.sql(`INSERT INTO chat.org_policies (org_id, chat_retention_days) VALUES ($1, 1)`, [org]);
    await env.sql(`INSERT INTO chat.memberships (org_id, user_id, role) SELECT $1, u, 'member' FROM unnest($2::uuid[]) u`, [org, [held, free]]);
  });

  afterAll(async () => {
    await rpc?.close();
    await env?.close();
    await llm?.close();
  });

  it('goes in a retention run, except for a user under a legal hold, and never in the hourly housekeeping', async () => {
    const ids = {
      heldOld: await conversation(held, org, 3),
      freeOld: await conversation(free, org, 3),
      freeRecent: await conversation(free, org, 0),
      freePrivate: await conversation(free, 'private', 30),
    };
    const all = Object.values(ids);

    await chat.app.get(AgeRetentionService).purgeExpired();
    expect(await remaining(all)).toEqual([...all].sort());

    const report = await rpc.call(privacyRetentionRpc('chat'), { categories: [{ category: 'chat-history', retentionDays: null }], dryRun: false, heldUserIds: [held] });
    expect(report.results).toEqual([{ category: 'chat-history', affected: 1 }]);
    expect(await remaining(all)).toEqual([ids.heldOld, ids.freeRecent, ids.freePrivate].sort());
  });

  it("keeps to an organisation's own chatRetentionDays also when compliance set a period, which holds besides (whichever ends first)", async () => {
    const ids = {
      pastOrg: await conversation(free, org, 3),
      recent: await conversation(free, org, 0),
      privateWithin: await conversation(free, 'private', 30),
      privatePast: await conversation(free, 'private', 400),
    };
    const all = Object.values(ids);
    const report = await rpc.call(privacyRetentionRpc('chat'), { categories: [{ category: 'chat-history', retentionDays: 365 }], dryRun: false, heldUserIds: [held] });
    expect(report.results).toEqual([{ category: 'chat-history', affected: 2 }]);
    expect(await remaining(all)).toEqual([ids.recent, ids.privateWithin].sort());
  });

  it("deletes a conversation's older messages while it is still in use, counting each row once, a dry run alike", async () => {
    const inUse = await conversation(free, org, 0);
    const heldInUse = await conversation(held, org, 0);
    const privateInUse = await conversation(free, 'private', 0);
    const gone = await conversation(free, org, 5);
    const msgs = {
      old: await message(inUse, free, 3),
      fresh: await message(inUse, free, 0),
      heldOld: await message(heldInUse, held, 3),
      privateOld: await message(privateInUse, free, 30),
      privatePast: await message(privateInUse, free, 400),
      ofGone: await message(gone, free, 5),
    };
    const all = Object.values(msgs);
    const run = (retentionDays: number | null, dryRun: boolean) =>
      rpc.call(privacyRetentionRpc('chat'), { categories: [{ category: 'chat-history', retentionDays }], dryRun, heldUserIds: [held] });

    // The organisation's day: the expired conversation (its message with it) and the old message in use.
    expect((await run(null, true)).results).toEqual([{ category: 'chat-history', affected: 2 }]);
    expect((await run(null, false)).results).toEqual([{ category: 'chat-history', affected: 2 }]);
    expect(await remaining([inUse, heldInUse, privateInUse, gone])).toEqual([inUse, heldInUse, privateInUse].sort());
    expect(await remainingMessages(all)).toEqual([msgs.fresh, msgs.heldOld, msgs.privateOld, msgs.privatePast].sort());

    // A period compliance set reaches the private workspace's old message too, never a held user's.
    expect((await run(365, true)).results).toEqual([{ category: 'chat-history', affected: 1 }]);
    expect((await run(365, false)).results).toEqual([{ category: 'chat-history', affected: 1 }]);
    expect(await remainingMessages(all)).toEqual([msgs.fresh, msgs.heldOld, msgs.privateOld].sort());
  });

  it("deletes the older messages of a user restricted in another workspace only, and keeps those where the restriction holds", async () => {
    const [elsewhere, here] = [randomUUID(), randomUUID()];
    await env.sql(`INSERT INTO chat.memberships (org_id, user_id, role) SELECT $1, u, 'member' FROM unnest($2::uuid[]) u`, [org, [elsewhere, here]]);
    const msgs = {
      restrictedElsewhere: await message(await conversation(elsewhere, org, 0), elsewhere, 3),
      restrictedHere: await message(await conversation(here, org, 0), here, 3),
    };
    const run = (dryRun: boolean) =>
      rpc.call(privacyRetentionRpc('chat'), {
        categories: [{ category: 'chat-history', retentionDays: null }],
        dryRun,
        heldUserIds: [held, elsewhere, here],
        heldScopes: [
          { userId: elsewhere, scope: 'private' },
          { userId: here, scope: org },
        ],
      });
    expect((await run(true)).results).toEqual([{ category: 'chat-history', affected: 1 }]);
    expect((await run(false)).results).toEqual([{ category: 'chat-history', affected: 1 }]);
    expect(await remainingMessages(Object.values(msgs))).toEqual([msgs.restrictedHere]);
    // Gone for the tests after this one, which hold nobody in a workspace only.
    await env.sql(`DELETE FROM chat.messages WHERE user_id = ANY($1::uuid[])`, [[elsewhere, here]]);
    await env.sql(`DELETE FROM chat.conversations WHERE user_id = ANY($1::uuid[])`, [[elsewhere, here]]);
  });

  it("deletes a former member's business conversations 30 days after their removal, and keeps the removal's record until then", async () => {
    const keeps = randomUUID(); // an organisation without a period of its own
    const [former, justRemoved, neverKnown] = [randomUUID(), randomUUID(), randomUUID()];
    await env.sql(`INSERT INTO chat.memberships (org_id, user_id, role) VALUES ($1, $2, 'member')`, [keeps, free]);
    await env.sql(`INSERT INTO chat.membership_removals (org_id, user_id, removed_at) VALUES ($1, $2, now() - interval '31 days'), ($1, $3, now() - interval '2 days')`, [keeps, former, justRemoved]);
    const ids = {
      former: await conversation(former, keeps, 40),
      formerPrivate: await conversation(former, 'private', 40),
      justRemoved: await conversation(justRemoved, keeps, 40),
      // No removal on record (the replica never heard of one): nothing to go by.
      neverKnown: await conversation(neverKnown, keeps, 40),
      member: await conversation(free, keeps, 40),
    };
    const formerMessage = await message(ids.former, former, 40);
    const all = Object.values(ids);
    // The hourly housekeeping keeps a removal while the former member still has conversations there.
    await chat.app.get(AgeRetentionService).purgeExpired();
    expect(await env.sql(`SELECT user_id FROM chat.membership_removals WHERE org_id = $1 ORDER BY user_id`, [keeps])).toHaveLength(2);
    const report = await rpc.call(privacyRetentionRpc('chat'), { categories: [{ category: 'chat-history', retentionDays: null }], dryRun: false, heldUserIds: [held] });
    expect(report.results).toEqual([{ category: 'chat-history', affected: 1 }]);
    expect(await remaining(all)).toEqual([ids.formerPrivate, ids.justRemoved, ids.neverKnown, ids.member].sort());
    expect(await remainingMessages([formerMessage])).toEqual([]);
    // Their conversations there gone, the removal's record goes too.
    await chat.app.get(AgeRetentionService).purgeExpired();
    expect((await env.sql<{ user_id: string }>(`SELECT user_id FROM chat.membership_removals WHERE org_id = $1`, [keeps])).map((r) => r.user_id)).toEqual([justRemoved]);
  });
});
