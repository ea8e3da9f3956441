import { randomUUID } from 'node:crypto';
import { serveJson, type EmulatorServer } from '../http-server.js';

/** One mail as Brevo took it through `POST /v3/smtp/email`. */
export interface EmulatedMail {
  messageId: string;
  receivedAt: string;
  sender: { email: string; name?: string };
  to: { email: string; name?: string }[];
  subject: string;
  htmlContent?: string;
  textContent?: string;
  tags?: string[];
  headers?: Record<string, string>;
  /** Every http(s) link found in the content, for the dev mailbox. */
  links: string[];
}

export interface Fault {
  status: number;
  /** How many of the next sends fail this way. */
  times: number;
  retryAfterSeconds?: number;
}

export interface BrevoEmulator extends EmulatorServer {
  /** Base URL to give the SDK (`…/v3`). */
  apiUrl: string;
  /** Brevo's logs: what it took, less what a log deletion (`DELETE /v3/smtp/log/:identifier`, an address or a message id) removed. */
  mails(to?: string): EmulatedMail[];
  /** What reached the inboxes: a mail stays delivered after Brevo deletes its log. */
  delivered(to?: string): EmulatedMail[];
  failNext(fault: Fault): void;
  /** The next `times` sends are answered (and kept) only after `delayMs`: a mail in flight. */
  slowNext(slow: { delayMs: number; times?: number }): void;
  clear(): void;
}

/** A link in a mail; a closing bracket or full stop right after it is the sentence's, not the link's. */
const LINK = /https?:\/\/[^\s"'<>]+?(?=[).,;:!?]*(?:[\s"'<>]|$))/g;
/** How long Brevo remembers an idempotency key (its documentation: 30 minutes). */
const IDEMPOTENCY_TTL_MS = 30 * 60_000;

/** The `idempotencyKey` a send carries in its `headers`, where Brevo's API takes it. */
function idempotencyKeyOf(raw: string): string | undefined {
  try {
    const key = JSON.parse(raw)?.headers?.idempotencyKey;
    return typeof key === 'string' && key ? key : undefined;
  } catch {
    return undefined;
  }
}
const isEmail = (v: unknown) => typeof v === 'string' && /^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(v);

/**
 * Speaks the part of Brevo's API that Ally's notify service calls, with the
 * same paths, `api-key` header, status codes and error bodies, and keeps what
 * it received. Faults (429, 5xx, 400) can be injected for the next N sends,
 * over HTTP (`POST /__emulator/faults`) or in-process. A send repeating the
 * `idempotencyKey` of one accepted within `idempotencyTtlMs` (also one still
 * in flight) is answered with that send's message id and mails nobody again.
 */
export async function startBrevoEmulator(
  opts: {
    port?: number;
    host?: string;
    apiKey?: string;
    idempotencyTtlMs?: number;
    /** How a send repeating a held key is answered: with Brevo's 400 `duplicate_parameter` (the default, as Brevo documents it), or with the first send's message id. */
    repeatedKey?: 'first-answer' | 'duplicate-error';
  } = {},
): Promise<BrevoEmulator> {
  const ttlMs = opts.idempotencyTtlMs ?? IDEMPOTENCY_TTL_MS;
  const mails: EmulatedMail[] = [];
  const inboxes: EmulatedMail[] = [];
  /** Per key: when its send arrived, and its message id once accepted (undefined if it was refused). */
  const sends = new Map<string, { at: number; messageId: Promise<string | undefined> }>();
  const faults: Fault[] = [];
  const slow: { delayMs: number; times: number }[] = [];

  /** The head of a queue of injected behaviours, used up after its `times`. */
  const takeNext = <T extends { times: number }>(queue: T[]): T | undefined => {
    const next = queue[0];
    if (!next) return undefined;
    if (--next.times <= 0) queue.shift();
    return next;
  };

  const server = await serveJson(async (req, raw, url) => {
    // Inspection API, not Brevo's: what the dev mailbox and tests read. `?inbox=true`: what reached the inboxes
    // (also mails whose log an erasure had Brevo delete); otherwise Brevo's logs.
    if (url.pathname === '/__emulator/emails' && req.method === 'GET') {
      const to = url.searchParams.get('to');
      return { status: 200, body: { data: list(to ?? undefined, url.searchParams.get('inbox') === 'true' ? inboxes : mails) } };
    }
    if (url.pathname === '/__emulator/emails' && req.method === 'DELETE') {
      mails.length = 0;
      inboxes.length = 0;
      return { status: 204 };
    }
    if (url.pathname === '/__emulator/faults' && req.method === 'POST') {
      const fault = JSON.parse(raw || '{}') as Fault;
      faults.push({ status: Number(fault.status), times: Number(fault.times ?? 1), retryAfterSeconds: fault.retryAfterSeconds });
      return { status: 204 };
    }

    const log = /^\/v3\/smtp\/log\/(.+)$/.exec(url.pathname);
    if (log && req.method === 'DELETE') {
      if (!req.headers['api-key']) return { status: 401, body: { code: 'unauthorized', message: 'Key not found' } };
      // Brevo's identifier: a message id (`<…@…>`) names one mail, an address every mail to it.
      const identifier = decodeURIComponent(log[1]);
      const address = identifier.toLowerCase();
      const named = identifier.startsWith('<') ? (m: EmulatedMail) => m.messageId === identifier : (m: EmulatedMail) => m.to.some((t) => t.email.toLowerCase() === address);
      const before = mails.length;
      for (let i = mails.length - 1; i >= 0; i--) if (named(mails[i])) mails.splice(i, 1);
      return before === mails.length ? { status: 404, body: { code: 'document_not_found', message: 'No logs found for this identifier' } } : { status: 204 };
    }
    if (url.pathname !== '/v3/smtp/email' || req.method !== 'POST') {
      return { status: 404, body: { code: 'not_found', message: `Invalid route ${req.method} ${url.pathname}` } };
    }
    const key = req.headers['api-key'];
    if (!key || (opts.apiKey && key !== opts.apiKey)) {
      return { status: 401, body: { code: 'unauthorized', message: 'Key not found' } };
    }
    const idempotencyKey = idempotencyKeyOf(raw);
    if (!idempotencyKey) return send(raw);
    const earlier = sends.get(idempotencyKey);
    // A repeat waits for the first send (a client that timed out retries while it is still in flight).
    const messageId = earlier && Date.now() - earlier.at < ttlMs ? await earlier.messageId : undefined;
    if (messageId && opts.repeatedKey !== 'first-answer') return { status: 400, body: { code: 'duplicate_parameter', message: 'idempotencyKey already used' } };
    if (messageId) return { status: 201, body: { messageId } };
    const sending = send(raw);
    sends.set(idempotencyKey, { at: Date.now(), messageId: sending.then((r) => (r.status === 201 ? (r.body as { messageId: string }).messageId : undefined)) });
    return sending;
  }, opts.port, opts.host);

  /** `POST /v3/smtp/email` once authenticated: injected delays and faults, validation, and the mail kept. */
  async function send(raw: string) {
    const delay = takeNext(slow);
    if (delay) await new Promise((r) => setTimeout(r, delay.delayMs));
    const fault = takeNext(faults);
    if (fault) {
      // A rate limit says when it resets in Brevo's own headers (its documented x-sib-ratelimit-*, no Retry-After); other faults in HTTP's.
      const wait = fault.retryAfterSeconds ? String(fault.retryAfterSeconds) : undefined;
      const headers: Record<string, string> =
        wait === undefined ? {} : fault.status === 429 ? { 'x-sib-ratelimit-limit': '1000', 'x-sib-ratelimit-remaining': '0', 'x-sib-ratelimit-reset': wait } : { 'retry-after': wait };
      const code = fault.status === 400 ? 'invalid_parameter' : fault.status === 429 ? 'too_many_requests' : 'internal_error';
      return { status: fault.status, headers, body: { code, message: `Emulated failure ${fault.status}` } };
    }
    let body: Record<string, any>;
    try {
      body = JSON.parse(raw);
    } catch {
      return { status: 400, body: { code: 'bad_request', message: 'Input must be a valid JSON object' } };
    }
    const problems: string[] = [];
    if (!isEmail(body?.sender?.email)) problems.push('sender.email is missing or invalid');
    if (!Array.isArray(body?.to) || body.to.length === 0 || !body.to.every((t: { email?: unknown }) => isEmail(t?.email))) problems.push('to is missing or invalid');
    if (typeof body?.subject !== 'string' || !body.subject) problems.push('subject is missing');
    if (!body?.htmlContent && !body?.textContent) problems.push('htmlContent or textContent is missing');
    if (problems.length) return { status: 400, body: { code: 'missing_parameter', message: problems.join('; ') } };

    const messageId = `<${randomUUID()}@smtp-relay.mailin.fr>`;
    const content = `${body.htmlContent ?? ''}\n${body.textContent ?? ''}`;
    const mail: EmulatedMail = {
      messageId,
      receivedAt: new Date().toISOString(),
      sender: body.sender,
      to: body.to,
      subject: body.subject,
      htmlContent: body.htmlContent,
      textContent: body.textContent,
      tags: body.tags,
      headers: body.headers,
      links: [...new Set(content.match(LINK) ?? [])].map((l) => l.replace(/&amp;/g, '&')),
    };
    mails.push(mail);
    inboxes.push(mail);
    return { status: 201, body: { messageId } };
  }

  function list(to?: string, from = mails): EmulatedMail[] {
    const wanted = to?.toLowerCase();
    return from.filter((m) => !wanted || m.to.some((t) => t.email.toLowerCase() === wanted)).reverse();
  }

  return {
    ...server,
    apiUrl: `${server.url}/v3`,
    mails: (to) => list(to),
    delivered: (to) => list(to, inboxes),
    failNext: (fault) => faults.push({ ...fault }),
    slowNext: ({ delayMs, times = 1 }) => void slow.push({ delayMs, times }),
    clear: () => void ((mails.length = 0), (inboxes.length = 0)),
  };
}
