import { ProblemError } from './problem.js';

/** A keyset position (time, id) as the opaque `cursor` of a page; API.md's `nextCursor`. */
export function encodeCursor(at: Date, id: string): string {
  return Buffer.from(`${at.toISOString()}|${id}`).toString('base64url');
}

/**
 * Room for a page of items in one RPC reply, below NATS's 1 MB message with
 * what surrounds the page: items of up to 100,000 characters make `limit`
 * alone no bound.
 */
export const REPLY_PAGE_BYTES = 512 * 1024;

/** The longest start of `items` whose sizes fit `maxBytes`, but one item at least. */
export function fitting<T>(items: T[], maxBytes: number, bytesOf: (item: T) => number = (item) => Buffer.byteLength(JSON.stringify(item))): T[] {
  let bytes = 0;
  const taken = items.findIndex((item) => (bytes += bytesOf(item)) > maxBytes);
  return taken === -1 ? items : items.slice(0, Math.max(taken, 1));
}

/**
 * A page of a keyset list: the first `limit` of `rows` (read as `limit + 1`,
 * so one more tells whether any follow) and the cursor after the last of them.
 */
export function keysetPage<T>(rows: T[], limit: number, position: (row: T) => [at: Date, id: string]): { page: T[]; nextCursor: string | null } {
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return { page, nextCursor: rows.length > limit && last ? encodeCursor(...position(last)) : null };
}

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * A time as encodeCursor writes it. Date.parse also takes 31 February, 24:00
 * and year 0, which Postgres refuses or reads as another instant; only a time
 * that comes back from toISOString unchanged (years 1 to 9999) is one we gave out.
 */
function isIssuedTime(at: string): boolean {
  if (!ISO_TIME.test(at) || at.startsWith('0000')) return false;
  const time = Date.parse(at);
  return !Number.isNaN(time) && new Date(time).toISOString() === at;
}

/**
 * The position of a cursor this API gave out; anything else is a 400 naming the field.
 * `idPattern` is the shape of the list's ids: UUIDs, unless the list is keyed by another's (Stripe's).
 */
export function decodeCursor(cursor: string | undefined, idPattern = UUID): { at: string; id: string } | undefined {
  if (!cursor) return undefined;
  const [at, id, ...rest] = Buffer.from(cursor, 'base64url').toString('utf8').split('|');
  if (rest.length || !at || !id || !isIssuedTime(at) || !idPattern.test(id)) {
    throw new ProblemError(400, 'Invalid cursor', { errors: [{ field: 'cursor', message: 'is not a cursor this API gave out' }] });
  }
  return { at, id };
}

/**
 * A page of a short list a service holds whole (plans, retention policies, a
 * development inbox), in the shape of every list: the cursor names the last
 * item given, so the next page starts after it wherever it now stands.
 */
export function listPage<T>(items: T[], keyOf: (item: T) => string, { limit, cursor }: { limit: number; cursor?: string }): { data: T[]; nextCursor: string | null } {
  let start = 0;
  if (cursor) {
    const key = Buffer.from(cursor, 'base64url').toString('utf8');
    const last = items.findIndex((item) => keyOf(item) === key);
    if (last === -1) throw new ProblemError(400, 'Invalid cursor', { errors: [{ field: 'cursor', message: 'is not a cursor this API gave out, or its item is gone' }] });
    start = last + 1;
  }
  const data = items.slice(start, start + limit);
  return { data, nextCursor: start + limit < items.length ? Buffer.from(keyOf(data.at(-1)!)).toString('base64url') : null };
}
