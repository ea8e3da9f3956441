import { describe, expect, it } from '@jest/globals';
import { createHash, createHmac, randomUUID } from 'node:crypto';
import pg from 'pg';
import { BillingRpc, createEnvelope, ERASED_USER, privacyRpcs } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { publishEvent, waitFor } from '@ally/testing';
import { billingWorld, TEST_PSEUDONYM_KEY } from './billing-world.js';

/**
 * Between billing's erasure step and identity deleting the account, the
 * subject can still sign in: billing sets up nothing new for them then (a
 * Checkout left a customer, here and at Stripe, behind the erasure).
 */
/** The pseudonym billing keeps an erased subject's books under (keyed with the test's BILLING_PSEUDONYM_KEY). */
const aliasOf = (userId: string) => `erased-${createHmac('sha256', TEST_PSEUDONYM_KEY).update(userId).digest('hex').slice(0, 16)}`;

/** chat's usage event of one answer of `userId` in `workspace` (15 tokens). */
const usageEvent = (userId: string, workspace: string) =>
  createEnvelope({
    type: 'chat.completion.recorded',
    source: 'chat',
    data: { messageId: randomUUID(), workspace, userId, model: 'gpt-4o-mini', deployment: 'd', region: 'swedencentral', euResident: true, promptTokens: 10, completionTokens: 5, cost: 0.01 },
    subject: { userId },
  });

describe('billing for a subject it erased', () => {
  const world = billingWorld();

  it('refuses Checkout and the portal with 410 and creates no customer', async () => {
    const rpc = new RpcClient(await world.env.nats(), world.env.prefix);
    await rpc.connect();
    try {
      const actor = { userId: randomUUID(), platformRoles: [] as [] };
      await rpc.call(privacyRpcs('billing').erase, { userId: actor.userId, scope: 'all' });
      await expect(rpc.call(BillingRpc.checkout, { workspace: 'private', plan: 'team' }, { actor })).rejects.toMatchObject({ status: 410 });
      await expect(rpc.call(BillingRpc.portal, { workspace: 'private' }, { actor })).rejects.toMatchObject({ status: 410 });
      expect(await world.env.sql(`SELECT 1 FROM billing.customers WHERE workspace = $1`, [`private:${actor.userId}`])).toEqual([]);
      // Keyed: whoever has the id but not BILLING_PSEUDONYM_KEY cannot compute it (as they could an unkeyed hash).
      const alias = aliasOf(actor.userId);
      expect(alias).not.toBe(`erased-${createHash('sha256').update(`ally-billing:${actor.userId}`).digest('hex').slice(0, 16)}`);
      expect(await world.env.sql(`SELECT alias FROM billing.erased_subjects`)).toEqual([{ alias }]);

      // A private-only erasure leaves the account in use: the user may subscribe again.
      const other = { userId: randomUUID(), platformRoles: [] as [] };
      await rpc.call(privacyRpcs('billing').erase, { userId: other.userId, scope: 'private' });
      expect(await rpc.call(BillingRpc.checkout, { workspace: 'private', plan: 'team' }, { actor: other })).toMatchObject({ url: expect.any(String) });
    } finally {
      await rpc.close();
    }
  });

  it('books usage that arrives after the erasure as the erasure left the rest: under the pseudonym, naming nobody', async () => {
    const rpc = new RpcClient(await world.env.nats(), world.env.prefix);
    await rpc.connect();
    try {
      const userId = randomUUID();
      const org = randomUUID();
      await rpc.call(privacyRpcs('billing').erase, { userId, scope: 'all' });
      // chat wrote these before its own erasure step; billing's consumer lagged behind the erasure.
      const late = [`private`, org].map((workspace) =>
        usageEvent(userId, workspace),
      );
      for (const e of late) await publishEvent(world.env, e);
      const alias = aliasOf(userId);
      const rows = await waitFor(async () => {
        const found = await world.env.sql<{ workspace: string; user_id: string; tokens: number }>(`SELECT workspace, user_id, tokens FROM billing.ledger WHERE message_id = ANY($1::uuid[]) ORDER BY workspace`, [late.map((e) => (e.data as { messageId: string }).messageId)]);
        return found.length === 2 ? found : undefined;
      }, 'the late usage in the ledger');
      expect(rows).toEqual(
        expect.arrayContaining([
          { workspace: alias, user_id: ERASED_USER, tokens: 15 },
          { workspace: org, user_id: ERASED_USER, tokens: 15 },
        ]),
      );
      expect(await world.env.sql(`SELECT 1 FROM billing.ledger WHERE user_id = $1 OR workspace = $2`, [userId, `private:${userId}`])).toEqual([]);
    } finally {
      await rpc.close();
    }
  });

  it("books usage of one workspace a subject was erased from, from before that erasure or stopped by it, naming nobody; their usage there later names them", async () => {
    const rpc = new RpcClient(await world.env.nats(), world.env.prefix);
    await rpc.connect();
    try {
      const userId = randomUUID();
      const org = randomUUID();
      await rpc.call(privacyRpcs('billing').erase, { userId, scope: 'private' });
      await rpc.call(privacyRpcs('billing').erase, { userId, scope: org });
      const usage = (workspace: string, minutesAfter: number) => {
        const e = usageEvent(userId, workspace);
        return { ...e, occurredAt: new Date(Date.now() + minutesAfter * 60_000).toISOString() };
      };
      // An answer the erasure stopped, recorded a moment after it, in each workspace; and one asked for half an hour later.
      const events = [usage('private', 1), usage(org, 1), usage('private', 30)];
      for (const e of events) await publishEvent(world.env, e);
      const ids = events.map((e) => (e.data as { messageId: string }).messageId);
      const rows = await waitFor(async () => {
        const found = await world.env.sql<{ message_id: string; workspace: string; user_id: string }>(`SELECT message_id, workspace, user_id FROM billing.ledger WHERE message_id = ANY($1::uuid[])`, [ids]);
        return found.length === 3 ? found : undefined;
      }, 'the usage in the ledger');
      const alias = aliasOf(userId);
      const of = (i: number) => rows.find((r) => r.message_id === ids[i]);
      expect(of(0)).toMatchObject({ workspace: alias, user_id: ERASED_USER });
      expect(of(1)).toMatchObject({ workspace: org, user_id: ERASED_USER });
      expect(of(2)).toMatchObject({ workspace: `private:${userId}`, user_id: userId });
    } finally {
      await rpc.close();
    }
  });

  it('books usage that arrives while the subject is being erased after the erasure, under the pseudonym (it named them)', async () => {
    const userId = randomUUID();
    const alias = aliasOf(userId);
    // An erasure under way: it holds the subject's lock and has written its mark, not yet committed.
    const erasing = new pg.Client({ connectionString: world.env.adminUrl });
    await erasing.connect();
    try {
      await erasing.query('BEGIN');
      await erasing.query(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, [userId]);
      await erasing.query(`INSERT INTO billing.erased_subjects (alias) VALUES ($1)`, [alias]);
      const usage = usageEvent(userId, 'private');
      await publishEvent(world.env, usage);
      await new Promise((r) => setTimeout(r, 500));
      const booked = () => world.env.sql<{ workspace: string; user_id: string }>(`SELECT workspace, user_id FROM billing.ledger WHERE message_id = $1`, [(usage.data as { messageId: string }).messageId]);
      expect(await booked()).toEqual([]);
      await erasing.query('COMMIT');
      expect(await waitFor(async () => (await booked())[0], 'the usage booked')).toEqual({ workspace: alias, user_id: ERASED_USER });
    } finally {
      await erasing.end();
    }
  });

  it('leaves no customer behind when the erasure comes while Stripe is still creating one for a Checkout', async () => {
    const rpc = new RpcClient(await world.env.nats(), world.env.prefix);
    await rpc.connect();
    try {
      const actor = { userId: randomUUID(), platformRoles: [] as [] };
      // The SDK tries again after a 500: the customer arrives about half a second late.
      world.stripe.failNext({ status: 500, path: '/v1/customers', method: 'POST' });
      const checkout = rpc.call(BillingRpc.checkout, { workspace: 'private', plan: 'team' }, { actor }).then(
        () => 'paid',
        (err) => err.status,
      );
      await new Promise((r) => setTimeout(r, 100));
      await rpc.call(privacyRpcs('billing').erase, { userId: actor.userId, scope: 'all' });
      expect(await checkout).toBe(410);
      expect(await world.env.sql(`SELECT workspace FROM billing.customers WHERE workspace = $1 OR created_by = $2`, [`private:${actor.userId}`, actor.userId])).toEqual([]);
      // Its metadata names them: it is deleted at Stripe too.
      const deleted = world.stripe.requests({ method: 'DELETE', path: /^\/v1\/customers\/cus_/ }).map((r) => r.path.split('/').pop()!);
      expect(deleted).toHaveLength(1);
      expect(world.stripe.retrieve(deleted[0])).toMatchObject({ deleted: true });
    } finally {
      await rpc.close();
    }
  });

  it("exports the organisation's customer a subject set up (it names them as its creator) in the whole account's and that workspace's export", async () => {
    const rpc = new RpcClient(await world.env.nats(), world.env.prefix);
    await rpc.connect();
    try {
      const [userId, orgId] = [randomUUID(), randomUUID()];
      await world.env.sql(`INSERT INTO billing.customers (workspace, stripe_customer_id, created_by) VALUES ($1, 'cus_org_by_subject', $2)`, [orgId, userId]);
      const customersIn = async (scope: string) =>
        ((await rpc.call(privacyRpcs('billing').export, { userId, scope })).categories.contract as { customers: { workspace: string }[] }).customers.map((c) => c.workspace);
      expect(await customersIn('all')).toEqual([orgId]);
      expect(await customersIn(orgId)).toEqual([orgId]);
      expect(await customersIn('private')).toEqual([]);
      // Erasing another workspace (the private one, another organisation's) leaves it named; erasing its own unlinks it.
      for (const scope of ['private', randomUUID()]) await rpc.call(privacyRpcs('billing').erase, { userId, scope });
      expect(await customersIn(orgId)).toEqual([orgId]);
      await rpc.call(privacyRpcs('billing').erase, { userId, scope: orgId });
      expect(await customersIn('all')).toEqual([]);
      expect(await world.env.sql(`SELECT created_by FROM billing.customers WHERE workspace = $1`, [orgId])).toEqual([{ created_by: '00000000-0000-0000-0000-000000000000' }]);
    } finally {
      await rpc.close();
    }
  });
});
