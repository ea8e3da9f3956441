import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { categoriesOf, privacyRetentionRpc } from '@ally/contracts';
import type { CategoryRetentionRule, PurgeRule } from '@ally/persistence';
import { AgeRetentionService, CATEGORY_RETENTION_RULES, RETENTION_RULES } from '@ally/platform';
import { startPlatformWorld, type PlatformWorld } from './platform-world.js';

/**
 * Every retention rule's SQL against the real migrated schemas: the hourly
 * housekeeping and privacy's per-category runs, with and without held users.
 * A rule that names a wrong column fails only when it runs, hours later.
 */
describe('retention rules of every service run against their schemas', () => {
  let world: PlatformWorld;

  beforeAll(async () => {
    world = await startPlatformWorld({ privacy: false });
  });

  afterAll(async () => {
    await world?.close();
  });

  it.each(['identity', 'chat', 'billing', 'notify'] as const)('%s', async (name) => {
    const app = world.services[name].app;
    const hourly = await app.get(AgeRetentionService).purgeExpired();
    expect(Object.values(hourly).every((n) => Number.isInteger(n))).toBe(true);

    const categories = categoriesOf(name).map((c) => c.category);
    expect(categories.length).toBeGreaterThan(0);
    // A declared category goes only in privacy's runs (compliance's period, legal holds), never by the hourly housekeeping:
    // no hourly rule touches a category's table, whatever the rule is named.
    const categoryTables = app.get<CategoryRetentionRule[]>(CATEGORY_RETENTION_RULES).map((r) => r.table);
    expect(categoryTables.length).toBeGreaterThan(0);
    expect(app.get<PurgeRule[]>(RETENTION_RULES).filter((r) => categoryTables.includes(r.table))).toEqual([]);
    for (const retentionDays of [null, 0, 3650]) {
      const held = '4b7c6a4e-9f1d-4c8e-b2a1-0d3e5f6a7b8c';
      // Nobody held; held everywhere; held in their private workspace only (a restriction of one workspace).
      for (const [heldUserIds, heldScopes] of [[[], []], [[held], []], [[held], [{ userId: held, scope: 'private' }]]] as const) {
        for (const dryRun of [true, false]) {
          const report = await world.rpc.call(privacyRetentionRpc(name), { categories: categories.map((category) => ({ category, retentionDays })), dryRun, heldUserIds: [...heldUserIds], heldScopes: [...heldScopes] });
          expect(report.results.map((r) => r.category)).toEqual(categories);
        }
      }
    }
  });

  it.each(['identity', 'chat', 'billing', 'notify'] as const)('%s keeps its published outbox rows 7 days and its inbox rows 30, and never an unsent event', async (name) => {
    const sql = (text: string, params: unknown[] = []) => world.env.sql(text, params);
    const ids = { sentOld: randomUUID(), sentNew: randomUUID(), unsentOld: randomUUID(), inboxOld: randomUUID(), inboxNew: randomUUID() };
    const outbox = (id: string, createdDaysAgo: number, sentDaysAgo: number | null) =>
      sql(
        `INSERT INTO ${name}.outbox (id, subject, type, payload, created_at, sent_at) VALUES ($1, 'x', 'x', '{}', now() - make_interval(days => $2), now() - make_interval(days => $3))`,
        [id, createdDaysAgo, sentDaysAgo],
      );
    await outbox(ids.sentOld, 9, 8);
    await outbox(ids.sentNew, 6, 6);
    await outbox(ids.unsentOld, 40, null);
    await sql(`INSERT INTO ${name}.inbox (event_id, consumer, processed_at) VALUES ($1, 'housekeeping', now() - interval '31 days'), ($2, 'housekeeping', now() - interval '29 days')`, [ids.inboxOld, ids.inboxNew]);
    const hourly = await world.services[name].app.get(AgeRetentionService).purgeExpired();
    expect(hourly).toMatchObject({ outbox: 1, inbox: 1 });
    expect((await sql(`SELECT id FROM ${name}.outbox WHERE id = ANY($1) ORDER BY id`, [Object.values(ids)])).map((r) => r.id).sort()).toEqual([ids.sentNew, ids.unsentOld].sort());
    expect(await sql(`SELECT event_id FROM ${name}.inbox WHERE consumer = 'housekeeping'`)).toEqual([{ event_id: ids.inboxNew }]);
    await sql(`DELETE FROM ${name}.outbox WHERE id = ANY($1)`, [Object.values(ids)]);
  });

  it('identity deletes a session 30 days after it ended, by idle time too (nothing marks such a session revoked)', async () => {
    const user = randomUUID();
    await world.env.sql(`INSERT INTO identity.users (id, email, first_name, last_name) VALUES ($1, $2, 'Ida', 'Leerlauf')`, [user, `${user}@example.eu`]);
    const session = (lastUsed: string, absolute: string) =>
      world.env.sql<{ id: string }>(
        `INSERT INTO identity.sessions (id, user_id, method, created_at, last_used_at, absolute_expires_at) VALUES (gen_random_uuid(), $1, 'password', now() - interval '45 days', now() - $2::interval, now() + $3::interval) RETURNING id`,
        [user, lastUsed, absolute],
      );
    // Idle for 45 days (ended after the default 7, 38 days ago), its absolute expiry 15 days ago: gone.
    const [idle] = await session('45 days', '-15 days');
    // Idle for 36 days (ended 29 days ago), its absolute expiry still to come: kept.
    const [recent] = await session('36 days', '30 days');
    const report = await world.rpc.call(privacyRetentionRpc('identity'), { categories: [{ category: 'sessions', retentionDays: 30 }], dryRun: false, heldUserIds: [], heldScopes: [] });
    expect(report.results).toEqual([expect.objectContaining({ category: 'sessions', affected: 1 })]);
    const left = await world.env.sql<{ id: string }>(`SELECT id FROM identity.sessions WHERE user_id = $1`, [user]);
    expect(left.map((r) => r.id)).toEqual([recent.id]);
    expect(idle.id).not.toBe(recent.id);
  });

  it('billing forgets an erasure mark after 30 days: it only bridges the time until identity deletes the account', async () => {
    await world.env.sql(`INSERT INTO billing.erased_subjects (alias, erased_at) VALUES ('erased-00000000000000aa', now() - interval '31 days'), ('erased-00000000000000bb', now() - interval '29 days')`);
    await world.services.billing.app.get(AgeRetentionService).purgeExpired();
    const left = await world.env.sql<{ alias: string }>(`SELECT alias FROM billing.erased_subjects WHERE alias LIKE 'erased-00000000000000%' ORDER BY alias`);
    expect(left.map((r) => r.alias)).toEqual(['erased-00000000000000bb']);
  });

  it("chat keeps an erasure mark until a day after identity deleted the account, or 100 days when the erasure never got there", async () => {
    const marks = ['\\x01', '\\x02', '\\x03', '\\x04'];
    await world.env.sql(
      `INSERT INTO chat.erased_subjects (mark, erased_at, account_deleted_at) VALUES
         ($1::bytea, now() - interval '3 days', now() - interval '2 days'),
         ($2::bytea, now() - interval '3 days', now() - interval '2 hours'),
         ($3::bytea, now() - interval '30 days', NULL),
         ($4::bytea, now() - interval '101 days', NULL)`,
      marks,
    );
    await world.services.chat.app.get(AgeRetentionService).purgeExpired();
    const left = await world.env.sql<{ mark: string }>(`SELECT encode(mark, 'hex') AS mark FROM chat.erased_subjects WHERE mark = ANY($1::bytea[]) ORDER BY mark`, [marks]);
    expect(left.map((r) => r.mark)).toEqual(['02', '03']);
  });

  it('notify forgets a lifted restriction (or a rejected objection) 8 days after its lift, and keeps one that stands', async () => {
    const [old, recent, standing] = [randomUUID(), randomUUID(), randomUUID()];
    await world.env.sql(
      `INSERT INTO notify.restrictions (request_id, user_id, scope, lifted_at) VALUES ($1, gen_random_uuid(), 'all', now() - interval '9 days'), ($2, gen_random_uuid(), 'all', now() - interval '2 days'), ($3, gen_random_uuid(), 'all', NULL)`,
      [old, recent, standing],
    );
    await world.services.notify.app.get(AgeRetentionService).purgeExpired();
    const left = await world.env.sql<{ request_id: string }>(`SELECT request_id FROM notify.restrictions WHERE request_id = ANY($1::uuid[])`, [[old, recent, standing]]);
    expect(left.map((r) => r.request_id).sort()).toEqual([recent, standing].sort());
  });

  it('notify keeps an erasure mark 45 days: past the stream\'s 7, an erasure still running or its step tried again finds it (no second farewell, no mail)', async () => {
    await world.env.sql(`INSERT INTO notify.erased_subjects (mark, erased_at) VALUES ('zz-mark-old', now() - interval '46 days'), ('zz-mark-week', now() - interval '10 days')`);
    await world.services.notify.app.get(AgeRetentionService).purgeExpired();
    const left = await world.env.sql<{ mark: string }>(`SELECT mark FROM notify.erased_subjects WHERE mark LIKE 'zz-mark-%' ORDER BY mark`);
    expect(left.map((r) => r.mark)).toEqual(['zz-mark-week']);
  });
});
