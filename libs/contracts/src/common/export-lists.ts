import { ProblemError } from './problem.js';
import { EXPORT_PAGE_BYTES, exportPage, type PrivacyExport } from './privacy-rpc.js';

/**
 * A category of an export that grows without bound (a usage ledger, a log),
 * read a page at a time in a keyset order instead of built whole for every
 * page: the work of one page stays the same however long the list is.
 */
export interface ExportList {
  /** The category its rows fill (a list at the top of the export). */
  category: string;
  /**
   * At most `limit` rows after `after` in the list's order, each as the
   * export shows it and with its `place`: the key of that order as text
   * (`created_at::text`, `id::text`), given back as `after` to continue;
   * undefined for the list's start (a time before any: '-infinity', and the
   * least id of the column's type, keeps the comparison one the index answers).
   */
  read(after: Place | undefined, limit: number): Promise<{ value: unknown; place: Place }[]>;
}

/** The least uuid: where a list keyed by uuids starts (after a time of '-infinity'). */
export const NIL_UUID = '00000000-0000-0000-0000-000000000000';

/** A row's place in a list: its time as Postgres writes a timestamptz as text, and its id. */
export type Place = [at: string, id: string];

const PLACE_TIME = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,6})?[+-]\d{2}(:\d{2})?$/;
const PLACE_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$|^\d{1,19}$/i;
const isPlace = (p: unknown[]): p is Place => p.length === 2 && typeof p[0] === 'string' && PLACE_TIME.test(p[0]) && typeof p[1] === 'string' && PLACE_ID.test(p[1]);

/** Rows one read of a list asks for: far more than a page holds of typical rows, few enough to read quickly. */
const ROWS_PER_READ = 500;

/** A page token: the small part's own (`exportPage`), or a list's index and the place its page ended. */
type Token = ['small', number | string] | ['list', number] | ['list', number, ...Place];

const encode = (token: Token) => Buffer.from(JSON.stringify(token)).toString('base64url');

function decode(page: number | string, service: string, lists: number): Token {
  if (page === 0) return ['small', 0];
  const refused = () => new ProblemError(400, `Not an export page ${service} gave out: start again at page 0`);
  let token: unknown;
  try {
    token = JSON.parse(Buffer.from(String(page), 'base64url').toString('utf8'));
  } catch {
    throw refused();
  }
  if (!Array.isArray(token)) throw refused();
  const [kind, at, ...place] = token as unknown[];
  if (kind === 'small' && (typeof at === 'string' || (typeof at === 'number' && Number.isInteger(at) && at >= 0)) && place.length === 0) return ['small', at];
  if (kind === 'list' && typeof at === 'number' && Number.isInteger(at) && at >= 0 && at < lists) {
    if (place.length === 0) return ['list', at];
    if (isPlace(place)) return ['list', at, ...place];
  }
  throw refused();
}

/**
 * One page of a service's export whose `small` categories are built whole
 * (and paged by `exportPage`) and whose `lists` are read by keyset, one after
 * the other, after the small part and on the same page while it has room:
 * what `mergeExportPages` joins into the whole export. Every list's category
 * is on a page (empty when it has no rows).
 */
export async function pagedExport(service: string, page: number | string, small: () => Promise<Record<string, unknown>>, lists: ExportList[]): Promise<PrivacyExport> {
  const token = decode(page, service, lists.length);
  if (token[0] === 'small') {
    const part = exportPage({ service, categories: await small() }, token[1]);
    if (part.nextPage !== undefined) return { service, categories: part.categories, nextPage: encode(['small', part.nextPage]) };
    return fillFromLists(service, lists, part.categories, Buffer.byteLength(JSON.stringify(part.categories)), 0, undefined);
  }
  const [, index, ...place] = token;
  return fillFromLists(service, lists, {}, 0, index, place.length === 2 ? (place as Place) : undefined);
}

/** `categories` (`bytes` of JSON so far) and the lists' rows from list `index` after `place` on, as many as fit the page. */
async function fillFromLists(service: string, lists: ExportList[], categories: Record<string, unknown>, bytes: number, index: number, place: Place | undefined): Promise<PrivacyExport> {
  while (index < lists.length) {
    const list = lists[index];
    const taken = (categories[list.category] ??= []) as unknown[];
    const rows = await list.read(place, ROWS_PER_READ);
    for (const row of rows) {
      const size = Buffer.byteLength(JSON.stringify(row.value ?? null)) + 1;
      // One row at least per page, however large: a page must move on.
      if (bytes > 0 && bytes + size > EXPORT_PAGE_BYTES) return { service, categories, nextPage: encode(place ? ['list', index, ...place] : ['list', index]) };
      bytes += size;
      taken.push(row.value);
      place = row.place;
    }
    if (rows.length === ROWS_PER_READ) continue;
    index++;
    place = undefined;
  }
  return { service, categories };
}
