/** Postgres error codes we turn into domain answers instead of 500s. */
export const PG_UNIQUE_VIOLATION = '23505';
export const PG_FOREIGN_KEY_VIOLATION = '23503';

type PgError = { code?: string; constraint?: string };

/** The Postgres error as pg gives it, or as TypeORM wraps it (`driverError`). */
const pgError = (err: unknown): PgError | undefined => (err as { driverError?: PgError })?.driverError ?? (err as PgError | undefined);

export function isUniqueViolation(err: unknown, constraint?: string): boolean {
  const e = pgError(err);
  return e?.code === PG_UNIQUE_VIOLATION && (!constraint || e.constraint === constraint);
}

export function isForeignKeyViolation(err: unknown): boolean {
  return pgError(err)?.code === PG_FOREIGN_KEY_VIOLATION;
}
