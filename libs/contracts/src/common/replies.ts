import { z } from 'zod';

/**
 * Building blocks of the replies the public sees. Their schemas document the
 * gateway's answers (OpenAPI) and give the types services answer with; they
 * are not checked at run time.
 */

/** A time as `toISOString` writes it (UTC). */
export const replyTime = z.string().describe('ISO 8601 time (UTC)');

/** One page of a keyset list: `nextCursor` continues it (`?cursor=`), null on the last page. */
export interface Page<T> {
  data: T[];
  nextCursor: string | null;
}

/** The schema of a page of `item`s. */
export const pageOf = <S extends z.ZodType>(item: S) => z.strictObject({ data: z.array(item), nextCursor: z.string().nullable() });
