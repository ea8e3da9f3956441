import { describe, expect, it } from '@jest/globals';
import { decodeCursor, encodeCursor, listPage } from './cursor.js';
import { ProblemError } from './problem.js';

const ID = '0b7c7b7e-7a53-4c1e-9d43-3f1f0d7f9c11';
const raw = (text: string) => Buffer.from(text).toString('base64url');
const BAD_CURSOR = { status: 400, errors: [{ field: 'cursor', message: 'is not a cursor this API gave out' }] };

/** The problem decodeCursor answers, or undefined when it takes the cursor. */
function refusal(cursor: string) {
  try {
    decodeCursor(cursor);
    return undefined;
  } catch (err) {
    return err instanceof ProblemError ? err.toProblem() : err;
  }
}

describe(decodeCursor.name, () => {
  it('gives back the position of a cursor it encoded, up to the edges of the years Postgres takes', () => {
    for (const at of ['2024-02-29T23:59:59.999Z', '0001-01-01T00:00:00.000Z', '9999-12-31T23:59:59.999Z']) {
      expect(decodeCursor(encodeCursor(new Date(at), ID))).toEqual({ at, id: ID });
    }
  });

  it('refuses a time that Date.parse takes but Postgres refuses or reads as another instant: 400 naming cursor', () => {
    for (const at of ['2024-02-31T00:00:00.000Z', '2023-02-29T00:00:00.000Z', '0000-01-01T00:00:00.000Z', '2024-01-01T24:00:00.000Z', '2024-13-01T00:00:00.000Z', '2024-01-01T00:00:60.000Z']) {
      expect({ at, problem: refusal(raw(`${at}|${ID}`)) }).toEqual({ at, problem: expect.objectContaining(BAD_CURSOR) });
    }
  });

  it('takes the ids of a list keyed otherwise (Stripe invoices) when told their shape, and only those', () => {
    const at = '2026-04-01T00:00:00.000Z';
    expect(decodeCursor(encodeCursor(new Date(at), 'in_1AbC'), /^in_[A-Za-z0-9]+$/)).toEqual({ at, id: 'in_1AbC' });
    expect(refusal(encodeCursor(new Date(at), 'in_1AbC'))).toEqual(expect.objectContaining(BAD_CURSOR));
  });

  it('refuses times in another shape than the one it writes, and what is not time|id', () => {
    const times = ['2024-01-01T00:00:00Z', '2024-01-01T00:00:00.000000Z', '2024-01-01', '+010000-01-01T00:00:00.000Z', '-000001-01-01T00:00:00.000Z'];
    const others = ['2024-01-01T00:00:00.000Z|nope', `2024-01-01T00:00:00.000Z|${ID}|x`, ID];
    for (const text of [...times.map((at) => `${at}|${ID}`), ...others]) {
      expect({ text, problem: refusal(raw(text)) }).toEqual({ text, problem: expect.objectContaining(BAD_CURSOR) });
    }
  });
});

describe(listPage.name, () => {
  const letters = ['a', 'b', 'c', 'd', 'e'].map((id) => ({ id }));
  const key = (l: { id: string }) => l.id;

  it('walks a whole list page by page, each item once, the last page without a cursor', () => {
    const seen: string[] = [];
    let cursor: string | undefined;
    for (let n = 0; n < 10; n++) {
      const page = listPage(letters, key, { limit: 2, cursor });
      seen.push(...page.data.map(key));
      if (!page.nextCursor) break;
      cursor = page.nextCursor;
    }
    expect(seen).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(listPage(letters, key, { limit: 5 })).toEqual({ data: letters, nextCursor: null });
  });

  it('goes on after the item its cursor names, wherever it now stands (an item added before it)', () => {
    const { nextCursor } = listPage(letters, key, { limit: 2 });
    expect(listPage([{ id: 'new' }, ...letters], key, { limit: 2, cursor: nextCursor! }).data.map(key)).toEqual(['c', 'd']);
  });

  it('refuses a cursor naming no item (made up, or its item gone) with a 400 naming the field', () => {
    const { nextCursor } = listPage(letters, key, { limit: 2 });
    expect(() => listPage(letters.filter((l) => l.id !== 'b'), key, { limit: 2, cursor: nextCursor! })).toThrow(ProblemError);
    const refused = (() => {
      try {
        listPage(letters, key, { limit: 2, cursor: 'made-up' });
      } catch (err) {
        return err;
      }
    })();
    expect(refused).toBeInstanceOf(ProblemError);
    expect((refused as ProblemError).toProblem()).toMatchObject({ status: 400, errors: [{ field: 'cursor' }] });
  });
});
