import { describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { mergeExportPages, privacyRpcs, type PrivacyExport } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { billingWorld } from './billing-world.js';

/**
 * A long usage ledger (a row per answer, kept 10 years) is exported in pages
 * read by keyset: each page reads its own rows, the pages together are the
 * ledger once, in order, also while answers are booked and old rows go.
 */
describe("billing's export of a long ledger", () => {
  const world = billingWorld();

  it('gives every row once, in order, each page inside a NATS message, while rows come and go between pages', async () => {
    const userId = randomUUID();
    // 12,000 answers, seven to a microsecond at times (the order then falls to the id).
    await world.env.sql(
      `INSERT INTO billing.ledger (message_id, workspace, user_id, model, deployment, prompt_tokens, completion_tokens, tokens, cost, period, created_at, meter_status)
       SELECT gen_random_uuid(), 'private:' || $1, $1::uuid, 'gpt-4o-mini', 'gpt-4o-mini@azure-swedencentral', 100, 50, 150, 0.01, '2026-11',
              timestamptz '2026-11-01 10:00:00+00' + (i / 7) * interval '1 microsecond' + (i % 3) * interval '1 second', 'not_metered'
         FROM generate_series(1, 12000) AS i`,
      [userId],
    );
    const before = new Set((await world.env.sql<{ message_id: string }>(`SELECT message_id FROM billing.ledger WHERE user_id = $1`, [userId])).map((r) => r.message_id));
    const rpc = new RpcClient(await world.env.nats(), world.env.prefix);
    await rpc.connect();
    try {
      const pages: PrivacyExport[] = [];
      for (let page: number | string | undefined = 0; page !== undefined; page = pages.at(-1)!.nextPage) {
        pages.push(await rpc.call(privacyRpcs('billing').export, { userId, scope: 'all', page }));
        // An answer booked, and the oldest rows gone (a retention slice), before the next page is asked for.
        await world.env.sql(
          `INSERT INTO billing.ledger (message_id, workspace, user_id, model, deployment, prompt_tokens, completion_tokens, tokens, cost, period, meter_status)
           VALUES (gen_random_uuid(), 'private:' || $1, $1::uuid, 'gpt-4o-mini', 'd', 1, 1, 2, 0.001, '2026-12', 'not_metered')`,
          [userId],
        );
        await world.env.sql(`DELETE FROM billing.ledger WHERE message_id IN (SELECT message_id FROM billing.ledger WHERE user_id = $1 ORDER BY created_at, message_id LIMIT 25)`, [userId]);
      }
      expect(pages.length).toBeGreaterThan(3);
      for (const page of pages) expect(Buffer.byteLength(JSON.stringify(page))).toBeLessThan(700 * 1024);
      const merged = mergeExportPages(pages).categories as { 'usage-ledger': { message_id: string; created_at: string }[]; contract: unknown; invoices: unknown[] };
      expect(merged.contract).toEqual({ customers: [], subscriptions: [], caps: [] });
      expect(merged.invoices).toEqual([]);
      const ids = merged['usage-ledger'].map((r) => r.message_id);
      expect(new Set(ids).size).toBe(ids.length);
      // Every row there from the first page to the last is in it.
      const kept = (await world.env.sql<{ message_id: string }>(`SELECT message_id FROM billing.ledger WHERE user_id = $1`, [userId])).map((r) => r.message_id).filter((id) => before.has(id));
      expect(kept.length).toBeGreaterThan(11_000);
      const exported = new Set(ids);
      expect(kept.filter((id) => !exported.has(id))).toEqual([]);
      // In the ledger's order, and the rows as the export always showed them (no paging columns).
      const times = merged['usage-ledger'].map((r) => new Date(r.created_at).getTime());
      expect(times).toEqual([...times].sort((a, b) => a - b));
      expect(Object.keys(merged['usage-ledger'][0]).sort()).toEqual(['completion_tokens', 'cost', 'created_at', 'message_id', 'model', 'prompt_tokens', 'workspace']);
    } finally {
      await rpc.close();
    }
  });
});
