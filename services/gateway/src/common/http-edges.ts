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

/** Deeper than any body of API.md (a JSON schema in `response_format` included) needs. */
export const MAX_JSON_DEPTH = 64;

/**
 * JSON nested thousands deep parses, but overflows the stack of whatever walks
 * it next (the RPC's serialisation to the service): refused here, for every
 * route, before it can become a 500.
 */
export function limitJsonDepth(fastify: FastifyInstance): void {
  fastify.addHook('preValidation', async (req) => {
    const field = tooDeep(req.body, MAX_JSON_DEPTH);
    if (field === undefined) return;
    const message = `is nested deeper than ${MAX_JSON_DEPTH} levels`;
    if (!field) throw new ProblemError(400, `The request body ${message}`);
    throw new ProblemError(400, `The request body's field ${field} ${message}`, { errors: [{ field, message }] });
  });
}

/**
 * The top-level field under which `body` nests deeper than `max` ('' for the
 * body itself), if it does. Breadth-first, so this walk cannot overflow either.
 */
function tooDeep(body: unknown, max: number): string | undefined {
  if (body === null || typeof body !== 'object') return undefined;
  let level: [node: object, field: string][] = Object.entries(body).map(([k, v]) => [v, k] as [object, string]);
  for (let depth = 2; level.length > 0; depth++) {
    const next: [object, string][] = [];
    for (const [node, field] of level) {
      if (node === null || typeof node !== 'object') continue;
      if (depth > max) return Array.isArray(body) ? '' : field;
      for (const child of Object.values(node)) next.push([child, field]);
    }
    level = next;
  }
  return undefined;
}
