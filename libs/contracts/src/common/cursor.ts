import { ProblemError } from './problem.js';

/** A keyset position (time, id) as the opaque `cursor` of a page; API.md's `nextCursor`. */
export function encodeCursor(at: Date, id: string): string {
  return Buffer.from(`${at.toISOString()}|${id}`).toString('base64url');
}

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The position of a cursor this API gave out; anything else is a 400 naming the field. */
export function decodeCursor(cursor: string | undefined): { at: string; id: string } | undefined {
  if (!cursor) return undefined;
  const [at, id, ...rest] = Buffer.from(cursor, 'base64url').toString('utf8').split('|');
  if (rest.length || !at || !id || !ISO_TIME.test(at) || Number.isNaN(Date.parse(at)) || !UUID.test(id)) {
    throw new ProblemError(400, 'Invalid cursor', { errors: [{ field: 'cursor', message: 'is not a cursor this API gave out' }] });
  }
  return { at, id };
}
