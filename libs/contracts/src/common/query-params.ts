import { z } from 'zod';

/** Any parameter a query does not declare: a 400 naming it (a strict object names only "(body)"). */
const unknownParameter = z.unknown().refine(() => false, { error: 'is not a known query parameter' });
/** The parameters of a query string: each unknown one is refused by its name. */
export const queryParams = <S extends z.ZodRawShape>(shape: S) => z.object(shape).catchall(unknownParameter);
/** A page of a list (API.md): `?limit=&cursor=`, as every list takes them. */
export const pageParams = {
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.string().max(200).optional(),
};
