import type { FastifyInstance } from 'fastify';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { randomUUID } from 'node:crypto';
import { maxHeaderSize, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import FindMyWay, { type HTTPMethod } from 'find-my-way';
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
const CHARSET = /;\s*charset\s*=\s*("[^"]*"|[^;\s]*)/i;
const utf8 = new TextDecoder('utf-8', { fatal: true });
/** A Content-Encoding short and plain enough to be named back in the answer. */
const CODING_LIST = /^[a-z0-9._+-]+(, [a-z0-9._+-]+)*$/;

/**
 * The API speaks JSON only (API.md). Without this, Fastify would also parse
 * `text/plain` and form bodies (a browser sends both cross-site without a
 * preflight) and answer other types with a bare "Unsupported Media Type".
 * Nor does it decompress: a gzipped body would be parsed as it is and called
 * "not valid JSON", so any coding but `identity` is a 415 (RFC 9110 §15.5.16).
 */
export function requireJsonBodies(fastify: FastifyInstance): void {
  fastify.addHook('preParsing', async (req, reply, payload) => {
    const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
    if (!hasBody) return payload;
    const type = req.headers['content-type'] ?? '';
    if (!JSON_BODY.test(type)) {
      throw new ProblemError(415, 'The request body must be JSON, sent with Content-Type: application/json');
    }
    // JSON between systems is UTF-8 (RFC 8259 §8.1): a body in another charset would be read wrongly.
    const charset = CHARSET.exec(type)?.[1]?.replace(/"/g, '').toLowerCase();
    if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
      throw new ProblemError(415, 'The request body must be JSON in UTF-8 (charset=utf-8 or no charset)');
    }
    const codings = (req.headers['content-encoding'] ?? '')
      .split(',')
      .map((c) => c.trim().toLowerCase())
      .filter((c) => c && c !== 'identity');
    if (codings.length) {
      const named = codings.join(', ');
      reply.header('accept-encoding', 'identity');
      throw new ProblemError(415, `Content-Encoding ${named.length <= 64 && CODING_LIST.test(named) ? `"${named}" ` : ''}is not supported; send the body uncompressed`);
    }
    return payload;
  });
}

/**
 * An OPTIONS request is a CORS preflight here; @fastify/cors answers one
 * without Origin and Access-Control-Request-Method with a plain-text 400
 * from its hook, which Nest's adapter runs before any of ours: its answer is
 * turned into the problem every other bad request gets.
 */
export function explainNonPreflightOptions(fastify: FastifyInstance): void {
  fastify.addHook('onSend', async (req, reply, payload) => {
    if (req.method !== 'OPTIONS' || reply.statusCode !== 400 || payload !== 'Invalid Preflight Request') return payload;
    reply.type('application/problem+json');
    return JSON.stringify(new ProblemError(400, 'An OPTIONS request is a CORS preflight: send Origin and Access-Control-Request-Method').toProblem());
  });
}

/**
 * Fastify's JSON parser refuses a `__proto__` key, or a `constructor` holding a
 * `prototype` (prototype poisoning), but calls such a body "not valid JSON".
 * This is the same parser (Nest's default, with the raw body kept), except that
 * a body it refused which JSON.parse accepts is a 400 naming the key. An
 * empty body is no body, as without a content type: fetch wrappers send
 * `application/json` on every request, DELETEs and bodiless POSTs included
 * (a route that needs a body still answers 400 naming its fields).
 * Call before the app is initialised, so Nest's own JSON parser is not added.
 */
export function explainForbiddenJsonKeys(app: NestFastifyApplication): void {
  const fastify = app.getHttpAdapter().getInstance();
  const { bodyLimit, onProtoPoisoning, onConstructorPoisoning } = fastify.initialConfig;
  const parse = fastify.getDefaultJsonParser(onProtoPoisoning ?? 'error', onConstructorPoisoning ?? 'error');
  app.useBodyParser<Server>('application/json', { bodyLimit }, (req, body, done) => {
    if (body.length === 0) return done(null, undefined);
    let text: string;
    try {
      text = utf8.decode(body);
    } catch {
      // Read leniently, each bad byte would be stored as U+FFFD in place of what the client meant.
      return done(new ProblemError(400, 'The request body is not valid UTF-8'), undefined);
    }
    parse(req, text, (err, parsed) => {
      const field = err ? forbiddenKey(text) : undefined;
      if (field === undefined) return done(err, parsed);
      const message = 'is not allowed';
      done(
        new ProblemError(400, `The request body's field ${field} ${message}: keys named __proto__, or constructor.prototype, are refused for safety`, { errors: [{ field, message }] }),
        undefined,
      );
    });
  });
}

/**
 * Where valid JSON has a `__proto__` key or a `constructor` object with a
 * `prototype` key (as secure-json-parse checks), as a dotted path; undefined
 * if it has none or is not JSON. Iterative, and paths are only built for a hit.
 */
function forbiddenKey(text: string): string | undefined {
  let root: unknown;
  try {
    root = JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch {
    return undefined;
  }
  type Step = { key: string; up?: Step };
  const path = (step: Step | undefined, key: string) => {
    const keys = [key];
    for (let s = step; s; s = s.up) keys.unshift(s.key);
    return keys.join('.');
  };
  const todo: [node: unknown, at: Step | undefined][] = [[root, undefined]];
  for (let next = todo.pop(); next; next = todo.pop()) {
    const [node, at] = next;
    if (node === null || typeof node !== 'object') continue;
    if (Object.hasOwn(node, '__proto__')) return path(at, '__proto__');
    const ctor = Object.hasOwn(node, 'constructor') ? (node as { constructor: unknown }).constructor : undefined;
    if (ctor !== null && typeof ctor === 'object' && Object.hasOwn(ctor, 'prototype')) return path(at, 'constructor.prototype');
    for (const [key, child] of Object.entries(node)) todo.push([child, { key, up: at }]);
  }
  return undefined;
}

/** What a connection error Node's HTTP parser reports is, as a problem (anything else: a 400). */
const CLIENT_ERRORS: Record<string, [status: number, detail: string]> = {
  HPE_HEADER_OVERFLOW: [431, `The request's headers are too large: the request line and headers may take ${maxHeaderSize / 1024} KiB in all`],
  HPE_CHUNK_EXTENSIONS_OVERFLOW: [413, 'The chunk extensions of the request body are too large'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'The request was not received in time'],
};

/**
 * Fastify's `clientErrorHandler`: an error of the connection before there is a
 * request (headers too large, a malformed request line) is answered on the raw
 * socket, outside Nest and its problem filter, by default as plain JSON. This
 * answers a problem instead, then closes the connection as Node does: after a
 * parse error, the rest of what the client sent cannot be read as requests.
 */
export function answerClientError(err: Error & { code?: string; reason?: string }, socket: Duplex): void {
  // A reset connection is gone already (Node's documentation of 'clientError').
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  // Not into an answer already being written on this keep-alive connection.
  const inFlight = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (socket.writable && !inFlight?.headersSent) {
    const [status, detail] = CLIENT_ERRORS[err.code ?? ''] ?? [400, `The request is not valid HTTP/1.1${err.reason ? `: ${err.reason}` : ''}`];
    const { headers, body } = problemAnswer(status, detail);
    socket.write(rawAnswer(status, headers, body));
  }
  socket.destroy();
}

/** An HTTP/1.1 answer as the bytes written on a raw socket. */
function rawAnswer(status: number, headers: Record<string, string>, body: string): string {
  return `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n${Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join('')}\r\n${body}`;
}

/**
 * A problem answer for what is refused outside Fastify (and its problem
 * filter), on a connection that then closes: its headers and body.
 */
function problemAnswer(status: number, detail: string, extra: Record<string, string> = {}): { headers: Record<string, string>; body: string } {
  const body = JSON.stringify({ type: 'about:blank', title: STATUS_CODES[status], status, detail });
  return {
    headers: {
      'Content-Type': 'application/problem+json',
      'Content-Length': String(Buffer.byteLength(body)),
      'x-request-id': randomUUID(),
      'x-content-type-options': 'nosniff',
      ...extra,
      Connection: 'close',
    },
    body,
  };
}

/**
 * Requests Node answers itself unless told otherwise, outside Fastify: an
 * `Expect` other than 100-continue (a bare 417) and CONNECT (the connection
 * dropped without a word). Both get a problem, as every other refusal does.
 */
export function answerUnservedRequests(server: Server): void {
  server.on('checkExpectation', (_req: IncomingMessage, res: ServerResponse) => {
    const { headers, body } = problemAnswer(417, 'Only Expect: 100-continue is supported');
    res.writeHead(417, headers).end(body);
  });
  server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
    const { headers, body } = problemAnswer(405, 'CONNECT is not supported: this is an HTTP API, not a proxy', { Allow: 'GET, HEAD, POST, PUT, PATCH, DELETE' });
    socket.end(rawAnswer(405, headers, body));
  });
}

/**
 * An HTTP/1.1 request without a Host header is a 400 (RFC 9112 §3.2), as Node
 * answers it, but a problem with a request id: Node's own answer has no body
 * (the server is started with `requireHostHeader: false`, which leaves it to this).
 */
export function requireHostHeader(fastify: FastifyInstance): void {
  fastify.addHook('onRequest', async (req, reply) => {
    if (req.raw.httpVersion !== '1.1' || req.headers.host !== undefined) return;
    reply.header('connection', 'close');
    throw new ProblemError(400, 'The request has no Host header, which HTTP/1.1 requires');
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

/** Methods whose routes say where a path exists; OPTIONS is CORS's catch-all, HEAD follows GET. */
const ROUTED_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;

/**
 * A path that exists, asked with a method it does not take, is a 405 naming
 * the methods it does (`Allow`, RFC 9110 §15.5.6), not a 404 that says the
 * path is wrong. The routes are mirrored into a router of their own as they
 * are added; the check runs only for requests no route matched.
 */
export function answerWrongMethod(fastify: FastifyInstance): void {
  const routes = FindMyWay();
  fastify.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) {
      if ((ROUTED_METHODS as readonly string[]).includes(method) && !route.url.includes('*')) routes.on(method as HTTPMethod, route.url, () => undefined);
    }
  });
  fastify.addHook('preHandler', async (req, reply) => {
    if (!req.is404) return;
    const path = req.url.split('?', 1)[0];
    const allowed = ROUTED_METHODS.filter((m) => routes.find(m, path) !== null).flatMap((m) => (m === 'GET' ? ['GET', 'HEAD'] : [m]));
    if (allowed.length === 0) return;
    reply.header('allow', allowed.join(', '));
    throw new ProblemError(405, `${req.method} is not allowed here; ${path} takes ${allowed.join(', ')}`);
  });
}
