import { Readable } from 'node:stream';
import type { ClientOptions } from 'openai';
import { type Agent, fetch as undiciFetch, Headers as ResponseHeaders, request, Response } from 'undici';

// undici's types and the DOM-style ones the SDK declares differ only on paper, hence the casts.
type Fetch = NonNullable<ClientOptions['fetch']>;

/** Statuses whose response may not carry a body (the Fetch standard's null-body statuses). */
const NULL_BODY = new Set([101, 103, 204, 205, 304]);

/**
 * The `fetch` the SDK clients use (the SDK's documented `fetch` option): the
 * request goes through undici's `request()` on our Agent and comes back as an
 * undici `Response`, so the SDK's parsing, streaming, errors and abort work as
 * with any fetch. Measured against the emulator, a streamed answer costs ~30 %
 * less CPU this way than through undici's full `fetch()`, and the headers
 * arrive ~0.8 ms sooner; the Fetch machinery (request cloning, CORS and
 * redirect steps) does nothing for a server-to-server call to a fixed host.
 * Anything but a string or byte body (uploads) takes undici's `fetch()`.
 */
export function providerFetch(dispatcher: Agent): Fetch {
  const viaFetch = (input: string | URL | Request, init: RequestInit) => undiciFetch(input as string, { ...(init as object), dispatcher });
  return (async (input: string | URL | Request, init: RequestInit = {}) => {
    const body = init.body;
    if (typeof input !== 'string' && !(input instanceof URL)) return viaFetch(input, init);
    if (body != null && typeof body !== 'string' && !(body instanceof Uint8Array)) return viaFetch(input, init);
    const res = await request(input, {
      method: (init.method ?? 'GET') as 'GET',
      headers: [...new Headers(init.headers).entries()].flat(),
      body: body ?? undefined,
      signal: init.signal ?? undefined,
      dispatcher,
    });
    const headers = new ResponseHeaders();
    for (const [name, value] of Object.entries(res.headers)) {
      if (Array.isArray(value)) for (const v of value) headers.append(name, v);
      else if (value !== undefined) headers.set(name, value);
    }
    if (NULL_BODY.has(res.statusCode)) {
      res.body.resume();
      return new Response(null, { status: res.statusCode, headers });
    }
    return new Response(Readable.toWeb(res.body) as ReadableStream, { status: res.statusCode, headers });
  }) as unknown as Fetch;
}
