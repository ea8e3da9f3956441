import type { FastifyInstance } from 'fastify';
import { ProblemError } from '@ally/contracts';

/**
 * The router answers a path it cannot percent-decode (`/v1/orgs/%E0%A4%A`)
 * itself, before any hook and outside the problem filter: plain JSON, no
 * request id, no security headers. Escaping the stray `%` instead lets the
 * request take the normal way, where the route (a 400 for a bad id) or the
 * 404 handler answers it as a problem.
 */
export function escapeMalformedPath(url: string): string {
  if (!url.includes('%')) return url;
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  try {
    decodeURIComponent(path);
    return url;
  } catch {
    return path.replaceAll('%', '%25') + (q < 0 ? '' : url.slice(q));
  }
}

const JSON_BODY = /^application\/json\s*(;|$)/i;

/**
 * The API speaks JSON only (API.md). Without this, Fastify would also parse
 * `text/plain` and form bodies (a browser sends both cross-site without a
 * preflight) and answer other types with a bare "Unsupported Media Type".
 */
export function requireJsonBodies(fastify: FastifyInstance): void {
  fastify.addHook('preParsing', async (req, _reply, payload) => {
    const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
    if (hasBody && !JSON_BODY.test(req.headers['content-type'] ?? '')) {
      throw new ProblemError(415, 'The request body must be JSON, sent with Content-Type: application/json');
    }
    return payload;
  });
}
