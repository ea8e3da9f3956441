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

/**
 * SQLSTATE class 08 (connection exception), 57P01-57P03 (admin/crash shutdown, cannot connect now), 25006 (a
 * write reaching a server that is read-only now: a failover under way) and 53300 (too many connections).
 */
const UNAVAILABLE_SQLSTATE = /^(08...|57P0[123]|25006|53300)$/;
/** Socket errors of a connection to a database that is down or unreachable. */
const UNAVAILABLE_ERRNO = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);
/** What pg and pg-pool say, without a code, when a connection ends, cannot be had in time or times out. */
const UNAVAILABLE_MESSAGE = /connection terminated|timeout exceeded when trying to connect|is not queryable|query read timeout/i;

/**
 * The database could not be reached or went away (down, restarting, out of
 * connections in time): a fault of the infrastructure, not of the request or
 * event being handled, so retrying later can succeed. Looks through TypeORM's
 * `driverError`, `cause` and an AggregateError's errors (a refused connect to several addresses).
 */
export function isDatabaseUnavailable(err: unknown, depth = 0): boolean {
  if (!err || typeof err !== 'object' || depth > 4) return false;
  const e = err as { code?: unknown; message?: unknown; driverError?: unknown; cause?: unknown; errors?: unknown };
  if (typeof e.code === 'string' && (UNAVAILABLE_SQLSTATE.test(e.code) || UNAVAILABLE_ERRNO.has(e.code))) return true;
  if (typeof e.message === 'string' && UNAVAILABLE_MESSAGE.test(e.message)) return true;
  const inner = [e.driverError, e.cause, ...(Array.isArray(e.errors) ? e.errors : [])];
  return inner.some((i) => i !== err && isDatabaseUnavailable(i, depth + 1));
}
