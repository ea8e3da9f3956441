import { describe, expect, it } from '@jest/globals';
import { exportPage, mergeExportPages, type PrivacyExport } from './privacy-rpc.js';
import { ProblemError } from './problem.js';

const row = (i: number) => ({ message_id: `m-${String(i).padStart(6, '0')}`, model: 'gpt-4o-mini', note: 'Ä'.repeat(200), created_at: '2026-12-06T10:00:00.000Z' });

/** Every page of `full`, as privacy asks for them: 0, then each answer's nextPage. */
function pagesOf(full: PrivacyExport): PrivacyExport[] {
  const pages: PrivacyExport[] = [];
  for (let page: number | string | undefined = 0; page !== undefined; page = pages.at(-1)!.nextPage) pages.push(exportPage(full, page));
  return pages;
}

describe('export pages of a service that builds its export whole', () => {
  it('splits lists (at the top of a category and one level down) so each page fits a NATS message, and merging gives the export back', () => {
    const full: PrivacyExport = {
      service: 'billing',
      categories: {
        account: { email: 'a@example.eu', first_name: 'Ada' },
        nothing: null,
        'usage-ledger': Array.from({ length: 6_000 }, (_, i) => row(i)),
        contract: { customers: [{ workspace: 'private:x' }], subscriptions: [], caps: Array.from({ length: 3_000 }, (_, i) => row(i)), note: 'kept whole' },
        invoices: [],
      },
    };
    const pages = pagesOf(full);
    expect(pages.length).toBeGreaterThan(2);
    // Bytes, not characters: an umlaut takes two.
    for (const page of pages) expect(Buffer.byteLength(JSON.stringify(page))).toBeLessThan(700 * 1024);
    expect(pages.at(-1)!.nextPage).toBeUndefined();
    expect(mergeExportPages(pages)).toEqual(full);
  });

  it('keeps every later list in place when an earlier one grows between two pages (a sign-in while the export runs)', () => {
    const build = (audit: number): PrivacyExport => ({
      service: 'identity',
      categories: { 'login-audit': Array.from({ length: audit }, (_, i) => row(i)), 'api-keys': Array.from({ length: 4_000 }, (_, i) => row(100_000 + i)) },
    });
    const pages = [exportPage(build(3_000), 0)];
    // Two more sign-ins before each following page is asked for.
    for (let n = 1; pages.at(-1)!.nextPage !== undefined; n++) pages.push(exportPage(build(3_000 + 2 * n), pages.at(-1)!.nextPage!));
    const ids = (rows: unknown) => (rows as { message_id: string }[]).map((r) => r.message_id);
    const merged = mergeExportPages(pages).categories as Record<string, { message_id: string }[]>;
    expect(ids(merged['api-keys'])).toEqual(ids(build(0).categories['api-keys']));
    expect(new Set(merged['login-audit'].map((r) => r.message_id)).size).toBe(merged['login-audit'].length);
  });

  it('continues a list at the element it stopped at when older rows of it were deleted between two pages (a retention run meanwhile)', () => {
    const build = (from: number): PrivacyExport => ({ service: 'notify', categories: { 'delivery-log': Array.from({ length: 6_000 - from }, (_, i) => row(from + i)) } });
    const pages = [exportPage(build(0), 0)];
    // The oldest 50 rows go before each following page is asked for.
    for (let n = 1; pages.at(-1)!.nextPage !== undefined; n++) pages.push(exportPage(build(50 * n), pages.at(-1)!.nextPage!));
    const ids = (mergeExportPages(pages).categories['delivery-log'] as { message_id: string }[]).map((r) => r.message_id);
    // Every row is there once: the first page's, and after it all that were still kept (none skipped).
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.at(-1)).toBe(row(5_999).message_id);
    expect(ids).toEqual([...ids].sort());
    const firstPage = (pages[0].categories['delivery-log'] as unknown[]).length;
    expect(ids.length).toBe(6_000);
    expect(firstPage).toBeGreaterThan(0);
  });

  it('answers a small export in one page as it is, and refuses a page token it never gave out', () => {
    const full: PrivacyExport = { service: 'notify', categories: { 'delivery-log': [{ template: 'welcome' }], 'suppression-list': [] } };
    expect(exportPage(full, 0)).toEqual(full);
    expect(() => exportPage(full, 'eyJhIjoxfQ')).toThrow(ProblemError);
    expect(() => exportPage(full, 5)).toThrow(ProblemError);
  });
});
