/** The scheme in any case (RFC 9110 §11.1), one space, then one token and nothing after it. */
const BEARER = /^bearer (\S+)$/i;

/**
 * The token of an `Authorization: Bearer <token>` header, undefined for any
 * other value. The guard and the rate limit both read the header here, so the
 * credential one authenticates is the one the other counts.
 */
export function bearerToken(header: unknown): string | undefined {
  return typeof header === 'string' ? BEARER.exec(header)?.[1] : undefined;
}
