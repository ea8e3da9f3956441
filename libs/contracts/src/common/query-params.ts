import { z } from 'zod';

/** A page of a list (API.md): `?limit=&cursor=`, as every list takes them. */
export const pageParams = {
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.string().max(200).optional(),
};
