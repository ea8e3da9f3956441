import { z } from 'zod';

/**
 * A whole number from a query string: decimal digits only, as people write
 * them (Number() alone also took "0x10", " 5" and "1e1").
 */
export const queryInt = (min: number, max: number, byDefault: number) =>
  z
    .preprocess(
      (v) => (typeof v === 'string' && !/^\d+$/.test(v) ? Number.NaN : v),
      z.coerce.number({ error: `must be a whole number from ${min} to ${max}` }).int().min(min).max(max).meta({ default: byDefault }),
    )
    // The meta above: the OpenAPI document names the default, which the preprocess hides from the schema's conversion.
    .default(byDefault);

/** A page of a list (API.md): `?limit=&cursor=`, as every list takes them. */
export const pageParams = {
  limit: queryInt(1, 100, 20),
  cursor: z.string().max(200).optional(),
};

/** The same for a short list a service holds whole (plans, retention policies): unasked, one page holds all of it. */
export const wholeListParams = {
  ...pageParams,
  limit: queryInt(1, 100, 100),
};
