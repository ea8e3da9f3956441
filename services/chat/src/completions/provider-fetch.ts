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
    const response = new Response(lazyWebStream(res.body), { status: res.statusCode, headers });
    nodeBodies.set(response, res.body);
    return response;
  }) as unknown as Fetch;
}

/** The Node stream behind each Response made here, for a reader that takes it as it is (`nodeBodyOf`). */
const nodeBodies = new WeakMap<object, Readable>();

/**
 * The body of a Response from `providerFetch` as the Node stream undici gave,
 * if nothing has read the web stream in front of it yet: reading it directly
 * spares every chunk of a streamed answer the web stream's queue and promises.
 */
export function nodeBodyOf(response: { bodyUsed: boolean; body: { locked: boolean } | null }): Readable | undefined {
  const body = nodeBodies.get(response);
  return body && !response.bodyUsed && !response.body?.locked ? body : undefined;
}

/**
 * A web stream over a Node stream that pulls nothing until it is read (a high
 * water mark of 0), so the Node stream stays whole for `nodeBodyOf` until then;
 * the SDK reads it this way for its errors and its non-streamed answers.
 */
function lazyWebStream(body: Readable): ReadableStream<Uint8Array> {
  let chunks: AsyncIterator<Buffer> | undefined;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        chunks ??= body[Symbol.asyncIterator]();
        const { value, done } = await chunks.next();
        if (done) controller.close();
        else controller.enqueue(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
      },
      cancel(reason) {
        // Given up on: undici reports its own abort as an 'error' that nobody waits for any more (unheard, it would end the process).
        body.on('error', () => undefined);
        body.destroy(reason instanceof Error ? reason : undefined);
      },
    },
    { highWaterMark: 0 },
  ) as ReadableStream<Uint8Array>;
}
