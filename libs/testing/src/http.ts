import { nonConformance } from './openapi-conformance.js';

/** A small JSON client for tests that talk to a service the way curl would. */
export interface HttpResult<T = any> {
  status: number;
  headers: Headers;
  body: T;
}

/**
 * `checkAgainstDocument` (default true): a gateway's answers are held to its OpenAPI document, fetched once per
 * gateway (a request of its own: off for tests that count requests against a rate limit).
 */
export function httpClient(baseUrl: string, { checkAgainstDocument = true }: { checkAgainstDocument?: boolean } = {}) {
  const request = async <T = any>(method: string, path: string, opts: { body?: unknown; token?: string; headers?: Record<string, string>; raw?: string | Uint8Array } = {}): Promise<HttpResult<T>> => {
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    let body: string | Uint8Array | undefined = opts.raw;
    if (opts.body !== undefined) {
      headers['content-type'] ??= 'application/json';
      body = JSON.stringify(opts.body);
    }
    const res = await fetch(`${baseUrl}${path}`, { method, headers, body, redirect: 'manual' });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      /* not JSON */
    }
    // Against a gateway, every answer is also held to its OpenAPI document.
    const wrong = checkAgainstDocument ? await nonConformance(baseUrl, method, path, res.status, res.headers.get('content-type'), parsed) : undefined;
    if (wrong) throw new Error(wrong);
    return { status: res.status, headers: res.headers, body: parsed as T };
  };
  return {
    request,
    get: <T = any>(path: string, token?: string) => request<T>('GET', path, { token }),
    post: <T = any>(path: string, body?: unknown, token?: string) => request<T>('POST', path, { body, token }),
    patch: <T = any>(path: string, body?: unknown, token?: string) => request<T>('PATCH', path, { body, token }),
    delete: <T = any>(path: string, token?: string) => request<T>('DELETE', path, { token }),
  };
}
