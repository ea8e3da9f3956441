import { describe, expect, it } from '@jest/globals';
import { pagedExport, type ExportList, type Place } from './export-lists.js';
import { mergeExportPages, type PrivacyExport } from './privacy-rpc.js';
import { ProblemError } from './problem.js';

interface Row {
  at: string;
  id: string;
  note: string;
}

/** A list in keyset order (at, id), read as a service's SQL reads it: rows after a place, at most `limit`. */
function listOf(category: string, rows: () => Row[]): ExportList & { reads: number } {
  const list = {
    category,
    reads: 0,
    read: async (after: Place | undefined, limit: number) => {
      list.reads++;
      const sorted = [...rows()].sort(byPlace);
      const behind = after ? sorted.filter((r) => r.at > after[0] || (r.at === after[0] && r.id > after[1])) : sorted;
      return behind.slice(0, limit).map((r) => ({ value: r, place: [r.at, r.id] as Place }));
    },
  };
  return list;
}

/** Times as Postgres writes a timestamptz as text, ids as a bigserial's: what a place holds. */
const row = (i: number, note = 'Ä'.repeat(150)): Row => ({ at: `2026-12-0${1 + (i % 5)} 10:00:00.${String(i % 7).padStart(6, '0')}+00`, id: String(i).padStart(7, '0'), note });
const byPlace = (a: Row, b: Row) => a.at.localeCompare(b.at) || a.id.localeCompare(b.id);

async function allPages(next: (page: number | string) => Promise<PrivacyExport>): Promise<PrivacyExport[]> {
  const pages: PrivacyExport[] = [];
  for (let page: number | string | undefined = 0; page !== undefined; page = pages.at(-1)!.nextPage) pages.push(await next(page));
  return pages;
}

describe('an export whose long lists are read by keyset', () => {
  it('gives the small part, then each list in its order, every page inside a NATS message, and merged the whole export', async () => {
    const ledger = Array.from({ length: 9_000 }, (_, i) => row(i));
    const audit = Array.from({ length: 2_000 }, (_, i) => row(50_000 + i, 'x'));
    const small = { account: { email: 'ada@example.eu' }, 'api-keys': [{ id: 'k1' }] };
    const lists = [listOf('usage-ledger', () => ledger), listOf('login-audit', () => audit), listOf('sessions', () => [])];
    const pages = await allPages((page) => pagedExport('billing', page, async () => small, lists));
    expect(pages.length).toBeGreaterThan(3);
    for (const page of pages) expect(Buffer.byteLength(JSON.stringify(page))).toBeLessThan(700 * 1024);
    const merged = mergeExportPages(pages).categories as Record<string, Row[]>;
    const ordered = (rows: Row[]) => [...rows].sort(byPlace);
    expect(merged).toEqual({ ...small, 'usage-ledger': ordered(ledger), 'login-audit': ordered(audit), sessions: [] });
    // Each page reads what it gives out (and one read more at a list's end), never the list whole.
    expect(lists[0].reads).toBeLessThan(9_000 / 500 + pages.length + 2);
  });

  it('neither repeats nor skips rows kept throughout when rows are added and old ones deleted between pages', async () => {
    let rows = Array.from({ length: 6_000 }, (_, i) => row(i));
    const before = new Set(rows.map((r) => r.id));
    const list = listOf('delivery-log', () => rows);
    const pages: PrivacyExport[] = [];
    let added = 0;
    for (let page: number | string | undefined = 0; page !== undefined; page = pages.at(-1)!.nextPage) {
      pages.push(await pagedExport('notify', page, async () => ({}), [list]));
      // A retention run takes the oldest 40; new mails come in (newest last).
      rows = [...rows.sort(byPlace).slice(40), ...Array.from({ length: 3 }, () => ({ ...row(0), at: '2026-12-31 00:00:00+00', id: String(9_000_000 + added++) }))];
    }
    const ids = (mergeExportPages(pages).categories['delivery-log'] as Row[]).map((r) => r.id);
    expect(new Set(ids).size).toBe(ids.length);
    const kept = rows.filter((r) => before.has(r.id));
    expect(kept.length).toBeGreaterThan(5_000);
    expect(kept.filter((r) => !ids.includes(r.id))).toEqual([]);
  });

  it('answers a small export in one page with its lists empty, and refuses a token it never gave out', async () => {
    const pages = await allPages((page) => pagedExport('notify', page, async () => ({ 'suppression-list': [] }), [listOf('delivery-log', () => [])]));
    expect(mergeExportPages(pages)).toEqual({ service: 'notify', categories: { 'suppression-list': [], 'delivery-log': [] } });
    const token = (t: unknown) => Buffer.from(JSON.stringify(t)).toString('base64url');
    // A list that is not there; a place of one value, of a number, of a time or id its SQL would choke on.
    const forged = [['list', 3], ['list', 0, 7], ['list', 0, '2026-12-01 10:00:00+00'], ['list', 0, 'yesterday', '1'], ['list', 0, '2026-12-01 10:00:00+00', "1'; --"]];
    for (const page of [5, 'eyJhIjoxfQ', ...forged.map(token)]) {
      await expect(pagedExport('notify', page, async () => ({}), [listOf('delivery-log', () => [])])).rejects.toBeInstanceOf(ProblemError);
    }
  });
});
