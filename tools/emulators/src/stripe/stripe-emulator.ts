import { createHash, createHmac, randomBytes, randomUUID } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { EmulatorServer } from '../http-server.js';

/**
 * A wire-compatible stand-in for the part of Stripe's v1 API a subscription
 * billing service uses, good enough for the official `stripe` SDK to work
 * against it unchanged:
 *
 *   new Stripe('sk_test_…', { host: '127.0.0.1', port: emulator.port, protocol: 'http' })   // or { ...emulator.sdkOptions }
 *
 * Wire format as Stripe: form-encoded requests (`a[b][c]=`, `a[0][b]=`, also
 * in the query string of GET/DELETE), `Authorization: Bearer sk_test_…` (or
 * basic auth with the key as user; 401 otherwise), JSON answers with Stripe's
 * object shapes, `id` prefixes and `request-id` header, errors shaped
 * `{ error: { type, message, code?, param?, doc_url? } }` (keys absent when
 * not applicable, as Stripe does), `Idempotency-Key` on POST honoured
 * (replayed with `idempotent-replayed: true`, 400 idempotency_error when the
 * key is reused with other parameters, 409 while the first is in flight, kept
 * 24 h of emulated time; only 2xx answers are stored, so a request that failed
 * validation or an injected fault runs again on retry), `expand[]` for fields
 * that hold an id, list pagination (`limit`, `starting_after`, `ending_before`).
 *
 * API (see the route table in {@link startStripeEmulator}):
 *   customers        POST/GET /v1/customers, GET /v1/customers/search, GET/POST/DELETE /v1/customers/{id}
 *   products, prices POST/GET /v1/products[/{id}], POST/GET /v1/prices[/{id}] (list: lookup_keys[], product, active, type)
 *   checkout         POST /v1/checkout/sessions, GET /v1/checkout/sessions[/{id}], POST /v1/checkout/sessions/{id}/expire
 *   subscriptions    POST/GET /v1/subscriptions, GET/POST/DELETE /v1/subscriptions/{id}
 *   billing portal   POST /v1/billing_portal/sessions
 *   invoices         GET /v1/invoices (customer, subscription, status, created), GET /v1/invoices/{id}, POST /v1/invoices/{id}/pay
 *   meters           POST/GET /v1/billing/meters, GET /v1/billing/meters/{id}, POST …/{id}/deactivate|reactivate,
 *                    GET /v1/billing/meters/{id}/event_summaries, POST /v1/billing/meter_events
 *   events           GET /v1/events, GET /v1/events/{id}
 *   webhook endpoints POST/GET /v1/webhook_endpoints, GET/DELETE /v1/webhook_endpoints/{id}
 *
 * Pages a browser can open (dev): `session.url` (GET /checkout/{id}: "Pay" completes
 * the session and redirects to success_url with {CHECKOUT_SESSION_ID} filled in),
 * the billing portal (`/billing_portal/{id}`: cancel / renew at period end, return link),
 * `hosted_invoice_url` (`/invoice/{id}`).
 *
 * Events (and webhooks, POSTed JSON pretty-printed like Stripe's, signed
 * `Stripe-Signature: t=<unix>,v1=<hex hmac-sha256(secret, "<t>.<body>")>`, t in
 * real time so `stripe.webhooks.constructEvent` accepts them within its 5 min tolerance):
 *   customers.create → customer.created; customers.update → customer.updated; delete → customer.deleted
 *   checkout completion → [customer.created when checkout created the customer], checkout.session.completed,
 *      customer.subscription.created, invoice.created, invoice.finalized, invoice.paid, invoice.payment_succeeded
 *   subscriptions.create → customer.subscription.created, invoice.created, invoice.finalized, invoice.paid, invoice.payment_succeeded
 *   subscriptions.update → customer.subscription.updated (data.previous_attributes); with proration_behavior
 *      always_invoice and a price/quantity change, then invoice.created, …finalized, …paid, …payment_succeeded
 *   subscriptions.cancel → customer.subscription.deleted (then the invoice events when invoice_now bills something)
 *   advanceTime past a period end → customer.subscription.updated, invoice.created, invoice.finalized,
 *      invoice.paid, invoice.payment_succeeded (declined: invoice.payment_failed, customer.subscription.updated → past_due);
 *      past cancel_at → customer.subscription.deleted; 3 days before trial_end → customer.subscription.trial_will_end;
 *      past a checkout session's expires_at → checkout.session.expired;
 *      23 hours after an incomplete subscription (its first payment declined) was created → customer.subscription.deleted (incomplete_expired)
 *
 * Control over HTTP (JSON bodies), besides the in-process helpers of {@link StripeEmulator}:
 *   POST /__emulator/checkout/{id}/complete {email?,name?}   POST /__emulator/webhook-endpoint {url,secret?,events?}
 *   DELETE /__emulator/webhook-endpoint   GET /__emulator/events   POST /__emulator/events {type,object,previous_attributes?}
 *   POST /__emulator/events/{id}/redeliver {times?}   GET /__emulator/deliveries   GET /__emulator/meter-events
 *   GET /__emulator/requests   POST /__emulator/faults {status,times?,path?,method?,…} or {hang:true,times?,path?}
 *   DELETE /__emulator/faults   POST /__emulator/advance-time {seconds}   GET /__emulator/clock
 *   POST /__emulator/decline-payments {customer?,decline?}   POST /__emulator/flush-webhooks   POST /__emulator/reset
 */

// The API version of stripe@23 (`Stripe.API_VERSION`); events carry it as api_version.
export const STRIPE_EMULATOR_API_VERSION = '2026-10-28.endive';

type Obj = Record<string, any>;
type Interval = 'day' | 'week' | 'month' | 'year';

export interface StripePriceSeed {
  id: string;
  /** Minor units (cents). Default `defaultUnitAmount` (1000). */
  unit_amount?: number;
  /** Default `defaultCurrency` ('eur'). */
  currency?: string;
  /** Recurring interval (default 'month'); null for a one-time price. */
  interval?: Interval | null;
  interval_count?: number;
  usage_type?: 'licensed' | 'metered';
  /** Meter id of a metered price (billed at renewal from the meter's events). */
  meter?: string;
  lookup_key?: string;
  nickname?: string;
  /** Product id (created when unknown) and its name. */
  product?: string;
  product_name?: string;
}

export interface StripeMeterSeed {
  id?: string;
  event_name: string;
  display_name?: string;
  formula?: 'sum' | 'count' | 'last';
  /** Payload key holding the customer id; default 'stripe_customer_id'. */
  customer_payload_key?: string;
  /** Payload key holding the value; default 'value'. */
  value_payload_key?: string;
}

export interface StripeEmulatorOptions {
  port?: number;
  host?: string;
  /** When set, only this secret key is accepted; otherwise any `sk_test_…` or `rk_test_…` key. */
  apiKey?: string;
  /** Base of the URLs handed out (checkout, billing portal, hosted invoices); default the server's own URL. */
  publicUrl?: string;
  /** `api_version` of events and default `stripe-version` answer header; default {@link STRIPE_EMULATOR_API_VERSION}. */
  apiVersion?: string;
  /** Webhook endpoint events are POSTed to (change later with `setWebhookEndpoint`). */
  webhookUrl?: string;
  /** Signing secret of that endpoint; default a random `whsec_…`. */
  webhookSecret?: string;
  /** Event types that endpoint receives (Stripe's enabled_events, `*` wildcards); default ['*']. */
  webhookEvents?: string[];
  /** Per-delivery timeout; default 10 000 ms. */
  webhookTimeoutMs?: number;
  /** Prices known from the start. When given, unknown price ids are refused like Stripe does (400 resource_missing); otherwise any price id is accepted and created on first use (defaultUnitAmount / defaultCurrency / monthly). */
  prices?: StripePriceSeed[];
  /** Meters known from the start. */
  meters?: StripeMeterSeed[];
  defaultUnitAmount?: number;
  defaultCurrency?: string;
  /** Exclusive tax added to invoices, in percent of the subtotal (total_taxes); default 0. */
  taxPercent?: number;
  /** Start of the emulated clock (unix seconds or Date); default now. */
  startTime?: number | Date;
}

export interface StripeFault {
  /** 429, 500, 503, 400, 402, 409, … */
  status: number;
  /** How many of the next matching API requests fail this way (default 1). */
  times?: number;
  /** Only requests whose path starts with this (or matches the RegExp), e.g. '/v1/billing/meter_events'. */
  path?: string | RegExp;
  method?: string;
  /** Override the Stripe-shaped error (defaults per status: 429 → rate_limit, 5xx → api_error, 402 → card_declined, …). */
  message?: string;
  type?: string;
  code?: string;
  param?: string;
  /** Answer header `Stripe-Should-Retry` (the SDK obeys it before its own rules: 409/5xx retried, 429 not). */
  shouldRetry?: boolean;
  retryAfterSeconds?: number;
}

export interface StripeHang {
  times?: number;
  path?: string | RegExp;
  method?: string;
}

export interface StripeWebhookDelivery {
  eventId: string;
  type: string;
  endpointId: string;
  url: string;
  /** 1 for the first delivery of an event to an endpoint, 2… for redeliveries. */
  attempt: number;
  redelivery: boolean;
  /** HTTP status the endpoint answered; undefined on a network error or timeout. */
  status?: number;
  error?: string;
  /** ISO timestamp (real time) of the attempt. */
  at: string;
  durationMs: number;
  /** The exact body and Stripe-Signature header sent. */
  payload: string;
  signature: string;
}

export interface StripeRequestRecord {
  /** `request-id` answered. */
  id: string;
  at: string;
  method: string;
  path: string;
  /** Parsed form / query parameters. */
  params: Obj;
  apiKey?: string;
  idempotencyKey?: string;
  stripeVersion?: string;
  status?: number;
  /** Answered from the idempotency store. */
  replayed: boolean;
  fault?: 'error' | 'hang';
}

/** A meter event as accepted by `POST /v1/billing/meter_events`. */
export interface EmulatedMeterEvent {
  identifier: string;
  event_name: string;
  payload: Record<string, string>;
  /** Event time (unix seconds) as sent or defaulted. */
  timestamp: number;
  /** Emulated time of acceptance. */
  created: number;
  /** payload[stripe_customer_id] (or the meter's customer key). */
  customer?: string;
  /** payload[value] as a number (NaN when not numeric). */
  value: number;
}

export interface StripeWebhookEndpointInfo {
  id: string;
  url: string;
  secret: string;
  events: string[];
}

export interface CompletedCheckout {
  session: Obj;
  customer: Obj;
  subscription?: Obj;
  invoice?: Obj;
  /** Events emitted by the completion, in order. */
  events: Obj[];
}

export interface StripeEmulator extends EmulatorServer {
  /** Options for `new Stripe(key, { ...emulator.sdkOptions })`: `{ host, port, protocol: 'http' }`. */
  sdkOptions: { host: string; port: number; protocol: 'http' };
  /** Signing secret of the default webhook endpoint (`whsec_…`). */
  webhookSecret: string;
  apiVersion: string;
  /** The emulated clock, unix seconds. */
  now(): number;
  /** Move the clock forward and run what falls due: renewals (invoice, payment), cancellations at period end, trial ends, session expiry. Resolves with the events emitted. */
  advanceTime(seconds: number): Promise<Obj[]>;
  /** Complete an open Checkout Session as if the customer paid (see the event order above). */
  /** As the customer submits the page: `name` and `address` are what Checkout collected (saved on an existing customer as `customer_update` says). */
  completeCheckout(sessionId: string, opts?: { email?: string; name?: string; address?: Obj; taxId?: { type: string; value: string } }): CompletedCheckout;
  /** Every event emitted, oldest first (copies). */
  events(filter?: { type?: string }): Obj[];
  /** Webhook delivery attempts, oldest first. */
  deliveries(filter?: { eventId?: string; type?: string }): StripeWebhookDelivery[];
  /** Resolves once every queued webhook delivery has been attempted. */
  flushWebhooks(): Promise<void>;
  /** Emit an arbitrary event (delivered to the endpoints like any other). Returns the event. */
  sendEvent(type: string, object: Obj, opts?: { previousAttributes?: Obj }): Obj;
  /** Deliver an already emitted event again (same id and body, fresh signature), `times` times; resolves with those attempts. */
  redeliver(eventId: string, times?: number): Promise<StripeWebhookDelivery[]>;
  /** Set (url) or remove (null) the default webhook endpoint. */
  setWebhookEndpoint(url: string | null, opts?: { secret?: string; events?: string[] }): StripeWebhookEndpointInfo | undefined;
  /** Accepted meter events, oldest first. */
  meterEvents(filter?: { event_name?: string; customer?: string }): EmulatedMeterEvent[];
  /** API requests received (not /__emulator or pages), oldest first. */
  requests(filter?: { method?: string; path?: string | RegExp }): StripeRequestRecord[];
  /** A snapshot of any object by id (customer, subscription, invoice, session, price, meter, event…). */
  retrieve(id: string): Obj | undefined;
  /** The next matching API requests fail with a Stripe-shaped error. */
  failNext(fault: StripeFault): void;
  /** The next matching API requests never answer. */
  hangNext(hang?: StripeHang): void;
  clearFaults(): void;
  /** Make payments (renewals, invoice pay) of a customer, or of everyone when no customer is given, decline (or succeed again with decline=false). */
  declinePayments(customer?: string, decline?: boolean): void;
  /** Pay an open invoice now (as a successful retry would). */
  payInvoice(invoiceId: string): Obj;
  /** Forget everything (objects, events, requests, faults, clock) and re-seed prices and meters. */
  reset(): void;
}

// ---------------------------------------------------------------- helpers

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const rand = (n: number) => Array.from(randomBytes(n), (b) => ALNUM[b % ALNUM.length]).join('');
const newId = (prefix: string, n = 24) => `${prefix}_${rand(n)}`;
const clone = <T>(v: T): T => structuredClone(v);
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
const FREE_FORM = new Set(['metadata', 'payload']);
const DAY = 86_400;
const HOUR = 3_600;

/** Parses Stripe's form encoding: `a[b][c]=v`, `a[0][b]=v`, `a[]=v`; indexed objects become arrays (not under metadata/payload). */
export function parseStripeForm(raw: string): Obj {
  const out: Obj = {};
  if (!raw) return out;
  const decode = (s: string) => {
    try {
      return decodeURIComponent(s.replace(/\+/g, ' '));
    } catch {
      return s;
    }
  };
  for (const pair of raw.split('&')) {
    if (!pair) continue;
    const eq = pair.indexOf('=');
    const key = decode(eq < 0 ? pair : pair.slice(0, eq));
    const value = eq < 0 ? '' : decode(pair.slice(eq + 1));
    const head = /^[^[]*/.exec(key)![0];
    const segments = [head, ...[...key.slice(head.length).matchAll(/\[([^\]]*)\]/g)].map((m) => m[1])];
    if (segments.some((s) => FORBIDDEN_KEYS.has(s))) continue;
    let node: Obj = out;
    for (let i = 0; i < segments.length; i++) {
      let seg = segments[i];
      if (seg === '') seg = String(Object.keys(node).length);
      if (i === segments.length - 1) node[seg] = value;
      else {
        if (typeof node[seg] !== 'object' || node[seg] === null) node[seg] = {};
        node = node[seg];
      }
    }
  }
  const arrayify = (v: unknown, key: string): unknown => {
    if (!v || typeof v !== 'object') return v;
    const o = v as Obj;
    const keys = Object.keys(o);
    const free = FREE_FORM.has(key);
    for (const k of keys) o[k] = free ? o[k] : arrayify(o[k], k);
    if (!free && keys.length && keys.every((k) => /^\d+$/.test(k))) return keys.sort((a, b) => Number(a) - Number(b)).map((k) => o[k]);
    return o;
  };
  return arrayify(out, '') as Obj;
}

/** `Stripe-Signature` value for a payload, exactly as Stripe signs webhooks. */
export function signStripePayload(payload: string, secret: string, timestamp = Math.floor(Date.now() / 1000)): string {
  const v1 = createHmac('sha256', secret).update(`${timestamp}.${payload}`, 'utf8').digest('hex');
  return `t=${timestamp},v1=${v1}`;
}

function addInterval(ts: number, interval: Interval, n: number): number {
  if (interval === 'day') return ts + n * DAY;
  if (interval === 'week') return ts + n * 7 * DAY;
  const months = interval === 'year' ? 12 * n : n;
  const d = new Date(ts * 1000);
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth() + months;
  const last = new Date(Date.UTC(y, m + 1, 0)).getUTCDate();
  return Math.floor(Date.UTC(y, m, Math.min(d.getUTCDate(), last), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds()) / 1000);
}

const matchesType = (pattern: string, type: string) =>
  pattern === '*' || pattern === type || (pattern.endsWith('.*') && type.startsWith(pattern.slice(0, -1)));

const esc = (s: unknown) => String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
const money = (amount: number, currency: string) => `${(amount / 100).toFixed(2)} ${currency.toUpperCase()}`;
const isoDate = (ts: number) => new Date(ts * 1000).toISOString().slice(0, 10);

class StripeApiError extends Error {
  constructor(
    readonly status: number,
    readonly detail: { type: string; message: string; code?: string; param?: string; decline_code?: string },
    readonly headers: Record<string, string> = {},
  ) {
    super(detail.message);
  }
}

const invalid = (message: string, param?: string, code?: string, status = 400, headers: Record<string, string> = {}) =>
  new StripeApiError(status, { type: 'invalid_request_error', message, ...(code ? { code } : {}), ...(param ? { param } : {}) }, headers);
const missing = (param: string) => invalid(`Missing required param: ${param}.`, param, 'parameter_missing');
const noSuch = (what: string, id: string, param: string, status = 400) => invalid(`No such ${what}: '${id}'`, param, 'resource_missing', status);

function errorBody(e: StripeApiError, requestId: string) {
  const d = e.detail;
  return {
    error: {
      ...(d.code ? { code: d.code, doc_url: `https://stripe.com/docs/error-codes/${d.code.replace(/_/g, '-')}` } : {}),
      ...(d.decline_code ? { decline_code: d.decline_code } : {}),
      message: d.message,
      ...(d.param ? { param: d.param } : {}),
      request_log_url: `https://dashboard.stripe.com/test/logs/${requestId}`,
      type: d.type,
    },
  };
}

function faultError(f: StripeFault): StripeApiError {
  const defaults: Record<number, { type: string; message: string; code?: string; decline_code?: string }> = {
    400: { type: 'invalid_request_error', message: 'Emulated invalid request.' },
    401: { type: 'invalid_request_error', message: 'Invalid API Key provided: sk_test_****' },
    402: { type: 'card_error', message: 'Your card was declined.', code: 'card_declined', decline_code: 'generic_decline' },
    403: { type: 'invalid_request_error', message: 'The provided key does not have the required permissions for this endpoint.' },
    404: { type: 'invalid_request_error', message: 'Emulated resource missing.', code: 'resource_missing' },
    409: { type: 'invalid_request_error', message: 'This object cannot be accessed right now because another API request or Stripe process is currently accessing it.', code: 'lock_timeout' },
    429: { type: 'invalid_request_error', message: 'Too many requests hit the API too quickly. We recommend an exponential backoff of your requests.', code: 'rate_limit' },
  };
  const base = defaults[f.status] ?? { type: 'api_error', message: 'An unknown error occurred' };
  const headers: Record<string, string> = {};
  if (f.shouldRetry !== undefined) headers['stripe-should-retry'] = String(f.shouldRetry);
  if (f.retryAfterSeconds !== undefined) headers['retry-after'] = String(f.retryAfterSeconds);
  const code = f.code ?? base.code;
  return new StripeApiError(
    f.status,
    { type: f.type ?? base.type, message: f.message ?? base.message, ...(code ? { code } : {}), ...(f.param ? { param: f.param } : {}), ...(base.decline_code ? { decline_code: base.decline_code } : {}) },
    headers,
  );
}

const pathHits = (path: string, method: string, t: { path?: string | RegExp; method?: string }) =>
  (!t.method || t.method.toUpperCase() === method) && (!t.path || (typeof t.path === 'string' ? path === t.path || path.startsWith(t.path) : t.path.test(path)));

// Parameter coercion (values arrive as strings).
function str(v: unknown, param: string): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw invalid(`Invalid string: ${JSON.stringify(v)}`, param);
  return v;
}
function int(v: unknown, param: string): number | undefined {
  if (v === undefined || v === '') return undefined;
  if (typeof v !== 'string' || !/^-?\d+$/.test(v)) throw invalid(`Invalid integer: ${typeof v === 'string' ? v : JSON.stringify(v)}`, param, 'parameter_invalid_integer');
  return Number(v);
}
function bool(v: unknown, param: string): boolean | undefined {
  if (v === undefined || v === '') return undefined;
  if (v === 'true' || v === true) return true;
  if (v === 'false' || v === false) return false;
  throw invalid(`Invalid boolean: ${String(v)}`, param);
}
function list(v: unknown): unknown[] {
  if (v === undefined || v === '') return [];
  if (Array.isArray(v)) return v;
  if (typeof v === 'object' && v) return Object.values(v);
  return [v];
}
/** Stripe's metadata update: `metadata[k]=''` removes k, `metadata=''` clears all. */
function applyMetadata(current: Obj, v: unknown, param = 'metadata'): Obj {
  if (v === undefined) return current;
  if (v === '') return {};
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalid('Invalid object', param);
  const out = { ...current };
  for (const [k, val] of Object.entries(v as Obj)) {
    if (k.length > 40) throw invalid(`Metadata keys can have up to 40 characters, but the key '${k}' has ${k.length}.`, `${param}[${k}]`);
    if (typeof val !== 'string') throw invalid('Invalid metadata value', `${param}[${k}]`);
    if (val.length > 500) throw invalid(`Metadata values can have up to 500 characters, but the value for '${k}' has ${val.length}.`, `${param}[${k}]`);
    if (val === '') delete out[k];
    else out[k] = val;
  }
  if (Object.keys(out).length > 50) throw invalid('Metadata can have up to 50 keys.', param);
  return out;
}
/** `created[gte]=…` style range (or an exact integer). */
function inRange(value: number, range: unknown, param: string): boolean {
  if (range === undefined || range === '') return true;
  if (typeof range === 'string') return value === int(range, param);
  const r = range as Obj;
  const gt = int(r.gt, `${param}[gt]`), gte = int(r.gte, `${param}[gte]`), lt = int(r.lt, `${param}[lt]`), lte = int(r.lte, `${param}[lte]`);
  return (gt === undefined || value > gt) && (gte === undefined || value >= gte) && (lt === undefined || value < lt) && (lte === undefined || value <= lte);
}

interface LineSpec {
  amount: number;
  description: string;
  price?: Obj;
  quantity: number | null;
  period: { start: number; end: number };
  proration: boolean;
  subscriptionItem?: string;
}

interface SubState {
  anchor: number;
  interval: Interval;
  intervalCount: number;
  /** Current period end = addInterval(anchor, interval, intervalCount × k). */
  k: number;
  trialWillEndSent: boolean;
  /** Prorations waiting for the next invoice (proration_behavior create_prorations). */
  pending: LineSpec[];
}

interface IdempotencyEntry {
  method: string;
  path: string;
  params: string;
  at: number;
  inFlight: boolean;
  status?: number;
  body?: unknown;
  requestId?: string;
}

interface Endpoint {
  id: string;
  url: string;
  secret: string;
  events: string[];
  object: Obj;
}

type Result = { status: number; body: unknown; headers?: Record<string, string> };
type Route = [method: string, pattern: RegExp, handler: (m: string[], p: Obj) => Result];

// ---------------------------------------------------------------- emulator

export async function startStripeEmulator(opts: StripeEmulatorOptions = {}): Promise<StripeEmulator> {
  const host = opts.host ?? '127.0.0.1';
  const apiVersion = opts.apiVersion ?? STRIPE_EMULATOR_API_VERSION;
  const defaultSecret = opts.webhookSecret ?? `whsec_${randomBytes(24).toString('hex')}`;
  const webhookTimeoutMs = opts.webhookTimeoutMs ?? 10_000;
  const strictPrices = opts.prices !== undefined;
  const defaultUnitAmount = opts.defaultUnitAmount ?? 1000;
  const defaultCurrency = opts.defaultCurrency ?? 'eur';
  const taxPercent = opts.taxPercent ?? 0;
  const realNow = () => Math.floor(Date.now() / 1000);
  const startAt = opts.startTime === undefined ? undefined : opts.startTime instanceof Date ? Math.floor(opts.startTime.getTime() / 1000) : Math.floor(opts.startTime);

  // State.
  let offset = 0;
  let clockOverride: number | undefined;
  const registry = new Map<string, Obj>(); // every object by id, for retrieve/expand
  const customers = new Map<string, Obj>();
  const products = new Map<string, Obj>();
  const prices = new Map<string, Obj>();
  const sessions = new Map<string, Obj>();
  const sessionItems = new Map<string, { price: Obj; quantity: number | null }[]>();
  /** A session's `customer_update`: what Checkout may save onto an existing customer. */
  const sessionCustomerUpdates = new Map<string, Obj>();
  /** Tax IDs by customer, as Checkout's tax ID collection saved them. */
  const customerTaxIds = new Map<string, Obj[]>();
  const sessionSubData = new Map<string, { metadata: Obj; trialDays?: number; description?: string }>();
  const subscriptions = new Map<string, Obj>();
  const subStates = new Map<string, SubState>();
  const invoices = new Map<string, Obj>();
  const portalSessions = new Map<string, Obj>();
  const meters = new Map<string, Obj>();
  const meterLog: EmulatedMeterEvent[] = [];
  const identifiers = new Map<string, number>();
  const eventLog: Obj[] = [];
  const eventPayloads = new Map<string, string>();
  const endpoints: Endpoint[] = [];
  let defaultEndpoint: Endpoint | undefined;
  const deliveryLog: StripeWebhookDelivery[] = [];
  const records: StripeRequestRecord[] = [];
  const idempotency = new Map<string, IdempotencyEntry>();
  let faults: (StripeFault & { times: number })[] = [];
  let hangs: (StripeHang & { times: number })[] = [];
  let declineAll = false;
  const declineCustomers = new Set<string>();
  let currentRequest: { id: string; idempotency_key: string | null } | null = null;
  const inFlight = new Set<ServerResponse>();

  const now = () => clockOverride ?? realNow() + offset;
  const put = <T extends Obj>(map: Map<string, Obj>, o: T): T => {
    map.set(o.id, o);
    registry.set(o.id, o);
    return o;
  };

  let baseUrl = ''; // set once listening
  const publicBase = () => (opts.publicUrl ?? baseUrl).replace(/\/+$/, '');

  // ------------------------------------------------------------ webhooks

  let queue: Promise<void> = Promise.resolve();

  function postJson(url: string, body: string, headers: Record<string, string>): Promise<number> {
    return new Promise((resolve, reject) => {
      let u: URL;
      try {
        u = new URL(url);
      } catch {
        return reject(new Error(`Invalid webhook URL ${url}`));
      }
      const send = u.protocol === 'https:' ? httpsRequest : httpRequest;
      const req = send(
        u,
        { method: 'POST', agent: false, timeout: webhookTimeoutMs, headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) } },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`Timed out after ${webhookTimeoutMs} ms`)));
      req.on('error', reject);
      req.end(body);
    });
  }

  function enqueueDelivery(endpoint: Endpoint, event: Obj, redelivery: boolean): Promise<StripeWebhookDelivery> {
    const run = async (): Promise<StripeWebhookDelivery> => {
      const payload = eventPayloads.get(event.id) ?? JSON.stringify(event, null, 2);
      const signature = signStripePayload(payload, endpoint.secret);
      const attempt = deliveryLog.filter((d) => d.eventId === event.id && d.endpointId === endpoint.id).length + 1;
      const started = Date.now();
      const delivery: StripeWebhookDelivery = {
        eventId: event.id,
        type: event.type,
        endpointId: endpoint.id,
        url: endpoint.url,
        attempt,
        redelivery,
        at: new Date(started).toISOString(),
        durationMs: 0,
        payload,
        signature,
      };
      deliveryLog.push(delivery);
      try {
        delivery.status = await postJson(endpoint.url, payload, {
          'content-type': 'application/json; charset=utf-8',
          'cache-control': 'no-cache',
          'user-agent': 'Stripe/1.0 (+https://stripe.com/docs/webhooks)',
          'stripe-signature': signature,
        });
      } catch (err) {
        delivery.error = (err as Error).message;
      }
      delivery.durationMs = Date.now() - started;
      return delivery;
    };
    const p = queue.then(run);
    queue = p.then(
      () => undefined,
      () => undefined,
    );
    return p;
  }

  function emit(type: string, object: Obj, previousAttributes?: Obj): Obj {
    const targets = endpoints.filter((e) => e.events.some((p) => matchesType(p, type)));
    const event: Obj = {
      id: newId('evt'),
      object: 'event',
      api_version: apiVersion,
      created: now(),
      data: { object: clone(object), ...(previousAttributes && Object.keys(previousAttributes).length ? { previous_attributes: clone(previousAttributes) } : {}) },
      livemode: false,
      pending_webhooks: targets.length,
      request: currentRequest ? { ...currentRequest } : { id: null, idempotency_key: null },
      type,
    };
    eventLog.push(event);
    registry.set(event.id, event);
    eventPayloads.set(event.id, JSON.stringify(event, null, 2));
    for (const endpoint of targets) void enqueueDelivery(endpoint, event, false);
    return event;
  }

  function diff(before: Obj, after: Obj): Obj {
    const out: Obj = {};
    for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
      if (JSON.stringify(before[key]) !== JSON.stringify(after[key])) out[key] = before[key] ?? null;
    }
    return out;
  }

  function addEndpoint(url: string, secret: string, events: string[], extra: Obj = {}): Endpoint {
    const id = newId('we');
    const object = {
      id,
      object: 'webhook_endpoint',
      api_version: extra.api_version ?? null,
      application: null,
      created: now(),
      description: extra.description ?? null,
      enabled_events: events,
      livemode: false,
      metadata: extra.metadata ?? {},
      status: 'enabled',
      url,
    };
    const endpoint: Endpoint = { id, url, secret, events, object };
    endpoints.push(endpoint);
    registry.set(id, object);
    return endpoint;
  }

  function setWebhookEndpoint(url: string | null, o: { secret?: string; events?: string[] } = {}): StripeWebhookEndpointInfo | undefined {
    if (defaultEndpoint) {
      endpoints.splice(endpoints.indexOf(defaultEndpoint), 1);
      registry.delete(defaultEndpoint.id);
      defaultEndpoint = undefined;
    }
    if (!url) return undefined;
    defaultEndpoint = addEndpoint(url, o.secret ?? defaultSecret, o.events ?? opts.webhookEvents ?? ['*']);
    return { id: defaultEndpoint.id, url, secret: defaultEndpoint.secret, events: defaultEndpoint.events };
  }

  // ------------------------------------------------------------ objects

  function createProduct(p: { id?: string; name: string; description?: string | null; metadata?: Obj }): Obj {
    const t = now();
    return put(products, {
      id: p.id ?? newId('prod', 14),
      object: 'product',
      active: true,
      created: t,
      default_price: null,
      description: p.description ?? null,
      images: [],
      livemode: false,
      marketing_features: [],
      metadata: p.metadata ?? {},
      name: p.name,
      package_dimensions: null,
      shippable: null,
      statement_descriptor: null,
      tax_code: null,
      type: 'service',
      unit_label: null,
      updated: t,
      url: null,
    });
  }

  function createPrice(s: StripePriceSeed & { metadata?: Obj; unit_amount_decimal?: string }): Obj {
    const productId = s.product ?? newId('prod', 14);
    if (!products.has(productId)) createProduct({ id: productId, name: s.product_name ?? s.nickname ?? s.lookup_key ?? s.id });
    const interval = s.interval === undefined ? 'month' : s.interval;
    const unit = s.unit_amount ?? (s.unit_amount_decimal === undefined ? defaultUnitAmount : null);
    return put(prices, {
      id: s.id,
      object: 'price',
      active: true,
      billing_scheme: 'per_unit',
      created: now(),
      currency: (s.currency ?? defaultCurrency).toLowerCase(),
      custom_unit_amount: null,
      livemode: false,
      lookup_key: s.lookup_key ?? null,
      metadata: s.metadata ?? {},
      nickname: s.nickname ?? null,
      product: productId,
      recurring: interval
        ? { interval, interval_count: s.interval_count ?? 1, meter: s.meter ?? null, trial_period_days: null, usage_type: s.usage_type ?? 'licensed' }
        : null,
      tax_behavior: 'unspecified',
      tiers_mode: null,
      transform_quantity: null,
      type: interval ? 'recurring' : 'one_time',
      unit_amount: unit,
      unit_amount_decimal: s.unit_amount_decimal ?? (unit === null ? null : String(unit)),
    });
  }

  function priceFor(id: unknown, param: string): Obj {
    if (typeof id !== 'string' || !id) throw missing(param);
    const found = prices.get(id);
    if (found) return found;
    if (strictPrices) throw noSuch('price', id, param);
    return createPrice({ id });
  }

  const unitAmount = (price: Obj) => (price.unit_amount ?? Number(price.unit_amount_decimal ?? 0)) as number;
  const isMetered = (price: Obj) => price.recurring?.usage_type === 'metered';
  const priceName = (price: Obj) => products.get(price.product)?.name ?? price.nickname ?? price.id;

  function createMeter(m: StripeMeterSeed & { event_time_window?: string | null }): Obj {
    const t = now();
    return put(meters, {
      id: m.id ?? newId('mtr_test', 24),
      object: 'billing.meter',
      created: t,
      customer_mapping: { event_payload_key: m.customer_payload_key ?? 'stripe_customer_id', type: 'by_id' },
      default_aggregation: { formula: m.formula ?? 'sum' },
      display_name: m.display_name ?? m.event_name,
      event_name: m.event_name,
      event_time_window: m.event_time_window ?? null,
      livemode: false,
      status: 'active',
      status_transitions: { deactivated_at: null },
      updated: t,
      value_settings: { event_payload_key: m.value_payload_key ?? 'value' },
    });
  }

  /** An address as Stripe keeps it: every field, null where none was given. */
  function addressOf(a: Obj): Obj {
    return { city: a.city ?? null, country: a.country ?? null, line1: a.line1 ?? null, line2: a.line2 ?? null, postal_code: a.postal_code ?? null, state: a.state ?? null };
  }

  function createCustomer(p: Obj): Obj {
    return put(customers, {
      id: newId('cus', 14),
      object: 'customer',
      address: p.address ?? null,
      balance: 0,
      created: now(),
      currency: null,
      default_source: null,
      delinquent: false,
      description: p.description ?? null,
      discount: null,
      email: p.email ?? null,
      invoice_prefix: rand(8).toUpperCase().replace(/[^A-Z0-9]/g, 'X'),
      invoice_settings: { custom_fields: null, default_payment_method: null, footer: null, rendering_options: null },
      livemode: false,
      metadata: p.metadata ?? {},
      name: p.name ?? null,
      next_invoice_sequence: 1,
      phone: p.phone ?? null,
      preferred_locales: p.preferred_locales ?? [],
      shipping: null,
      tax_exempt: p.tax_exempt ?? 'none',
      test_clock: null,
    });
  }

  function customerFor(id: unknown, param: string, status = 400): Obj {
    if (typeof id !== 'string' || !id) throw missing(param);
    const c = customers.get(id);
    if (!c || c.deleted) throw noSuch('customer', id, param, status);
    return c;
  }

  const planOf = (price: Obj) => ({
    id: price.id,
    object: 'plan',
    active: price.active,
    amount: price.unit_amount,
    amount_decimal: price.unit_amount_decimal,
    billing_scheme: price.billing_scheme,
    created: price.created,
    currency: price.currency,
    interval: price.recurring?.interval ?? null,
    interval_count: price.recurring?.interval_count ?? null,
    livemode: false,
    metadata: price.metadata,
    meter: price.recurring?.meter ?? null,
    nickname: price.nickname,
    product: price.product,
    tiers_mode: null,
    transform_usage: null,
    trial_period_days: null,
    usage_type: price.recurring?.usage_type ?? 'licensed',
  });

  function newItem(subId: string, price: Obj, quantity: number | null, metadata: Obj = {}): Obj {
    return {
      id: newId('si', 14),
      object: 'subscription_item',
      billing_thresholds: null,
      created: now(),
      current_period_end: 0,
      current_period_start: 0,
      discounts: [],
      metadata,
      plan: planOf(price),
      price: clone(price),
      ...(isMetered(price) ? {} : { quantity: quantity ?? 1 }),
      subscription: subId,
      tax_rates: [],
    };
  }

  function syncPeriods(sub: Obj, start: number, end: number) {
    sub.current_period_start = start;
    sub.current_period_end = end;
    for (const item of sub.items.data) {
      item.current_period_start = start;
      item.current_period_end = end;
    }
    sub.items.total_count = sub.items.data.length;
  }

  /** Validates line items / subscription items: recurring prices, same currency and interval, no quantity on metered prices. */
  function checkItems(items: { price: Obj; quantity: number | null }[], param: (i: number) => string, recurringRequired: boolean) {
    items.forEach(({ price, quantity }, i) => {
      if (recurringRequired && !price.recurring) {
        throw invalid(`The price specified is set to \`type=one_time\` but this field only accepts prices with \`type=recurring\`.`, `${param(i)}[price]`);
      }
      if (isMetered(price) && quantity !== null) {
        throw invalid(`Quantity should not be specified where usage_type is \`metered\`. Remove quantity from \`${param(i)}\`.`, `${param(i)}[quantity]`);
      }
      if (!isMetered(price) && quantity !== null && quantity < 0) throw invalid('This value must be greater than or equal to 0.', `${param(i)}[quantity]`);
    });
    const recurring = items.filter((x) => x.price.recurring);
    const first = recurring[0]?.price;
    for (const { price } of recurring) {
      if (price.currency !== first.currency) throw invalid('All prices on a subscription must have the same currency.', 'items');
      if (price.recurring.interval !== first.recurring.interval || price.recurring.interval_count !== first.recurring.interval_count) {
        throw invalid('All prices on a subscription must have the same `recurring.interval` and `recurring.interval_count`.', 'items');
      }
    }
  }

  function createSubscription(customer: Obj, items: { price: Obj; quantity: number | null; metadata?: Obj }[], o: { metadata: Obj; trialDays?: number; description?: string | null; cancelAtPeriodEnd?: boolean }): Obj {
    const t = now();
    const id = newId('sub');
    const first = items.find((x) => x.price.recurring)!.price;
    const trialEnd = o.trialDays ? t + o.trialDays * DAY : null;
    const state: SubState = {
      anchor: trialEnd ?? t,
      interval: first.recurring.interval,
      intervalCount: first.recurring.interval_count,
      k: trialEnd ? 0 : 1,
      trialWillEndSent: false,
      pending: [],
    };
    const sub: Obj = {
      id,
      object: 'subscription',
      application: null,
      application_fee_percent: null,
      automatic_tax: { disabled_reason: null, enabled: false, liability: null },
      billing_cycle_anchor: state.anchor,
      billing_cycle_anchor_config: null,
      billing_mode: { flexible: null, type: 'classic' },
      billing_thresholds: null,
      cancel_at: null,
      cancel_at_period_end: false,
      canceled_at: null,
      cancellation_details: { comment: null, feedback: null, reason: null },
      collection_method: 'charge_automatically',
      created: t,
      currency: first.currency,
      current_period_end: 0,
      current_period_start: 0,
      customer: customer.id,
      days_until_due: null,
      default_payment_method: newId('pm'),
      default_source: null,
      default_tax_rates: [],
      description: o.description ?? null,
      discounts: [],
      ended_at: null,
      invoice_settings: { account_tax_ids: null, issuer: { type: 'self' } },
      items: { object: 'list', data: [] as Obj[], has_more: false, total_count: 0, url: `/v1/subscription_items?subscription=${id}` },
      latest_invoice: null,
      livemode: false,
      metadata: o.metadata,
      next_pending_invoice_item_invoice: null,
      on_behalf_of: null,
      pause_collection: null,
      payment_settings: { payment_method_options: null, payment_method_types: null, save_default_payment_method: 'off' },
      pending_invoice_item_interval: null,
      pending_setup_intent: null,
      pending_update: null,
      schedule: null,
      start_date: t,
      status: trialEnd ? 'trialing' : 'active',
      test_clock: null,
      transfer_data: null,
      trial_end: trialEnd,
      trial_settings: { end_behavior: { missing_payment_method: 'create_invoice' } },
      trial_start: trialEnd ? t : null,
    };
    sub.items.data = items.map((x) => newItem(id, x.price, x.quantity, x.metadata));
    syncPeriods(sub, t, addInterval(state.anchor, state.interval, state.intervalCount * state.k));
    if (o.cancelAtPeriodEnd) setCancelAtPeriodEnd(sub, true);
    subStates.set(id, state);
    return put(subscriptions, sub);
  }

  function setCancelAtPeriodEnd(sub: Obj, on: boolean) {
    sub.cancel_at_period_end = on;
    sub.cancel_at = on ? sub.current_period_end : null;
    sub.canceled_at = on ? now() : null;
    sub.cancellation_details = on ? { ...sub.cancellation_details, reason: 'cancellation_requested' } : { comment: null, feedback: null, reason: null };
  }

  /** Usage of a metered price for a customer over [start, end). */
  function usage(price: Obj, customer: string, start: number, end: number): number {
    const meter = price.recurring?.meter ? meters.get(price.recurring.meter) : undefined;
    if (!meter) return 0;
    return aggregate(meter, customer, start, end);
  }

  function aggregate(meter: Obj, customer: string, start: number, end: number): number {
    const customerKey = meter.customer_mapping.event_payload_key;
    const events = meterLog.filter((e) => e.event_name === meter.event_name && e.payload[customerKey] === customer && e.timestamp >= start && e.timestamp < end);
    const valueOf = (e: EmulatedMeterEvent) => Number(e.payload[meter.value_settings.event_payload_key]);
    switch (meter.default_aggregation.formula) {
      case 'count':
        return events.length;
      case 'last': {
        const last = [...events].sort((a, b) => a.timestamp - b.timestamp || a.created - b.created).at(-1);
        const v = last ? valueOf(last) : 0;
        return Number.isFinite(v) ? v : 0;
      }
      default:
        return events.reduce((n, e) => n + (Number.isFinite(valueOf(e)) ? valueOf(e) : 0), 0);
    }
  }

  /** Lines of a subscription for a period: licensed items in advance for [start, end), metered usage in arrears for [usageStart, usageEnd). */
  function cycleLines(sub: Obj, start: number, end: number, usageWindow?: { start: number; end: number }): LineSpec[] {
    const lines: LineSpec[] = [];
    for (const item of sub.items.data) {
      const price = item.price;
      if (isMetered(price)) {
        if (!usageWindow) continue;
        const qty = usage(price, sub.customer, usageWindow.start, usageWindow.end);
        lines.push({ amount: Math.round(qty * unitAmount(price)), description: `${qty} × ${priceName(price)} (usage)`, price, quantity: qty, period: usageWindow, proration: false, subscriptionItem: item.id });
      } else {
        const qty = item.quantity ?? 1;
        lines.push({ amount: Math.round(qty * unitAmount(price)), description: `${qty} × ${priceName(price)}`, price, quantity: qty, period: { start, end }, proration: false, subscriptionItem: item.id });
      }
    }
    return lines;
  }

  const declines = (customer: string) => declineAll || declineCustomers.has(customer);

  /** Creates a finalized invoice for a subscription and tries to pay it. */
  function createInvoice(sub: Obj, reason: string, lines: LineSpec[], periodStart: number, periodEnd: number): Obj {
    const t = now();
    const customer = customers.get(sub.customer)!;
    const id = newId('in');
    const currency = sub.currency;
    const subtotal = lines.reduce((n, l) => n + l.amount, 0);
    const tax = taxPercent ? Math.round((Math.max(subtotal, 0) * taxPercent) / 100) : 0;
    const total = subtotal + tax;
    const startingBalance = customer.balance ?? 0;
    const amountDue = Math.max(0, total + startingBalance);
    customer.balance = Math.min(0, total + startingBalance);
    const pay = amountDue === 0 || !declines(customer.id);
    const number = `${customer.invoice_prefix}-${String(customer.next_invoice_sequence++).padStart(4, '0')}`;
    const taxLine = (amount: number, taxable: number) => ({
      amount,
      tax_behavior: 'exclusive',
      tax_rate_details: { tax_rate: 'txr_emulator' },
      taxability_reason: 'standard_rated',
      taxable_amount: taxable,
      type: 'tax_rate_details',
    });
    const invoice: Obj = {
      id,
      object: 'invoice',
      account_country: 'DE',
      account_name: 'Stripe emulator',
      account_tax_ids: null,
      amount_due: amountDue,
      amount_overpaid: 0,
      amount_paid: pay ? amountDue : 0,
      amount_remaining: pay ? 0 : amountDue,
      amount_shipping: 0,
      application: null,
      attempt_count: amountDue > 0 ? 1 : 0,
      attempted: true,
      auto_advance: !pay,
      automatic_tax: { disabled_reason: null, enabled: false, liability: null, provider: null, status: null },
      automatically_finalizes_at: null,
      billing_reason: reason,
      collection_method: 'charge_automatically',
      created: t,
      currency,
      custom_fields: null,
      customer: customer.id,
      customer_address: customer.address,
      customer_email: customer.email,
      customer_name: customer.name,
      customer_phone: customer.phone,
      customer_shipping: null,
      customer_tax_exempt: customer.tax_exempt,
      customer_tax_ids: [],
      default_payment_method: null,
      default_source: null,
      default_tax_rates: [],
      description: null,
      discounts: [],
      due_date: null,
      effective_at: t,
      ending_balance: customer.balance,
      footer: null,
      from_invoice: null,
      hosted_invoice_url: `${publicBase()}/invoice/${id}`,
      invoice_pdf: `${publicBase()}/invoice/${id}/pdf`,
      issuer: { type: 'self' },
      last_finalization_error: null,
      latest_revision: null,
      lines: {
        object: 'list',
        data: lines.map((l) => ({
          id: newId('il'),
          object: 'line_item',
          amount: l.amount,
          currency,
          description: l.description,
          discount_amounts: [],
          discountable: !l.proration,
          discounts: [],
          invoice: id,
          livemode: false,
          metadata: {},
          parent: {
            invoice_item_details: null,
            subscription_item_details: { invoice_item: null, proration: l.proration, proration_details: { credited_items: null }, subscription: sub.id, subscription_item: l.subscriptionItem ?? null },
            type: 'subscription_item_details',
          },
          period: l.period,
          pretax_credit_amounts: [],
          pricing: l.price ? { price_details: { price: l.price.id, product: l.price.product }, type: 'price_details', unit_amount_decimal: l.price.unit_amount_decimal } : null,
          quantity: l.quantity,
          subscription: sub.id,
          subtotal: l.amount,
          taxes: tax && l.amount > 0 ? [taxLine(Math.round((l.amount * taxPercent) / 100), l.amount)] : [],
          // Legacy mirrors (API versions before 2025-03-31.basil).
          price: l.price ? clone(l.price) : null,
          proration: l.proration,
        })),
        has_more: false,
        total_count: lines.length,
        url: `/v1/invoices/${id}/lines`,
      },
      livemode: false,
      metadata: {},
      next_payment_attempt: pay ? null : t + 3 * DAY,
      number,
      on_behalf_of: null,
      parent: { quote_details: null, subscription_details: { metadata: clone(sub.metadata), subscription: sub.id }, type: 'subscription_details' },
      payment_settings: { default_mandate: null, payment_method_options: null, payment_method_types: null },
      period_end: periodEnd,
      period_start: periodStart,
      post_payment_credit_notes_amount: 0,
      pre_payment_credit_notes_amount: 0,
      receipt_number: null,
      rendering: null,
      shipping_cost: null,
      shipping_details: null,
      starting_balance: startingBalance,
      statement_descriptor: null,
      status: pay ? 'paid' : 'open',
      status_transitions: { finalized_at: t, marked_uncollectible_at: null, paid_at: pay ? t : null, voided_at: null },
      subtotal,
      subtotal_excluding_tax: subtotal,
      test_clock: null,
      total,
      total_discount_amounts: [],
      total_excluding_tax: subtotal,
      total_pretax_credit_amounts: [],
      total_taxes: tax ? [taxLine(tax, Math.max(subtotal, 0))] : [],
      webhooks_delivered_at: t,
      // Legacy mirrors (API versions before 2025-03-31.basil); not `tax`, which basil removed for `total_taxes`.
      subscription: sub.id,
      paid: pay,
    };
    sub.latest_invoice = id;
    return put(invoices, invoice);
  }

  /** invoice.created (draft), invoice.finalized (open), then invoice.paid + invoice.payment_succeeded, or invoice.payment_failed. */
  function emitInvoiceEvents(invoice: Obj) {
    const draft = { ...clone(invoice), status: 'draft', amount_paid: 0, amount_remaining: invoice.amount_due, attempted: false, attempt_count: 0, paid: false, status_transitions: { ...invoice.status_transitions, finalized_at: null, paid_at: null } };
    emit('invoice.created', draft);
    const open = { ...clone(invoice), status: 'open', amount_paid: 0, amount_remaining: invoice.amount_due, paid: false, status_transitions: { ...invoice.status_transitions, paid_at: null } };
    emit('invoice.finalized', open);
    if (invoice.status === 'paid') {
      emit('invoice.paid', invoice);
      emit('invoice.payment_succeeded', invoice);
    } else {
      emit('invoice.payment_failed', invoice);
    }
  }

  function markPastDue(sub: Obj, invoice: Obj) {
    if (invoice.status === 'paid' || sub.status === 'past_due') return;
    const before = clone(sub);
    sub.status = 'past_due';
    emit('customer.subscription.updated', sub, diff(before, sub));
  }

  function payInvoice(id: string): Obj {
    const invoice = invoices.get(id);
    if (!invoice) throw noSuch('invoice', id, 'id', 404);
    if (invoice.status === 'paid') throw invalid('Invoice is already paid', undefined, 'invoice_already_paid');
    if (invoice.status !== 'open') throw invalid(`You can only pay an invoice that is open. This invoice is ${invoice.status}.`, undefined, 'invoice_not_editable');
    if (declines(invoice.customer)) {
      invoice.attempt_count += 1;
      invoice.next_payment_attempt = now() + 3 * DAY;
      emit('invoice.payment_failed', invoice);
      throw new StripeApiError(402, { type: 'card_error', message: 'Your card was declined.', code: 'card_declined', decline_code: 'generic_decline' });
    }
    const t = now();
    Object.assign(invoice, { status: 'paid', paid: true, amount_paid: invoice.amount_due, amount_remaining: 0, next_payment_attempt: null, auto_advance: false, attempt_count: invoice.attempt_count + 1 });
    invoice.status_transitions.paid_at = t;
    emit('invoice.paid', invoice);
    emit('invoice.payment_succeeded', invoice);
    const sub = invoice.subscription ? subscriptions.get(invoice.subscription) : undefined;
    if (sub && sub.status === 'past_due' && sub.latest_invoice === invoice.id) {
      const before = clone(sub);
      sub.status = 'active';
      emit('customer.subscription.updated', sub, diff(before, sub));
    }
    return invoice;
  }

  function cancelNow(sub: Obj, at: number, o: { invoiceNow?: boolean; prorate?: boolean; comment?: string; feedback?: string; reason?: string } = {}): Obj | undefined {
    const state = subStates.get(sub.id)!;
    let lines: LineSpec[] = [...state.pending];
    state.pending = [];
    const start = sub.current_period_start;
    const end = sub.current_period_end;
    if (o.prorate && at < end) {
      const frac = (end - at) / (end - start);
      for (const item of sub.items.data) {
        if (isMetered(item.price)) continue;
        const amount = Math.round((item.quantity ?? 1) * unitAmount(item.price) * frac);
        if (amount) lines.push({ amount: -amount, description: `Unused time on ${item.quantity ?? 1} × ${priceName(item.price)} after ${isoDate(at)}`, price: item.price, quantity: item.quantity ?? 1, period: { start: at, end }, proration: true, subscriptionItem: item.id });
      }
    }
    sub.status = 'canceled';
    sub.ended_at = at;
    sub.canceled_at = sub.canceled_at ?? at;
    sub.cancel_at = sub.cancel_at ?? null;
    sub.cancellation_details = {
      comment: o.comment ?? sub.cancellation_details.comment ?? null,
      feedback: o.feedback ?? sub.cancellation_details.feedback ?? null,
      reason: o.reason ?? sub.cancellation_details.reason ?? 'cancellation_requested',
    };
    let invoice: Obj | undefined;
    if (o.invoiceNow) {
      lines = [...lines, ...cycleLines(sub, start, end, { start, end: at }).filter((l) => isMetered(l.price!))];
      if (lines.length) invoice = createInvoice(sub, 'subscription_cycle', lines, start, at);
    } else if (lines.length) {
      // Credits without an invoice go to the customer's balance, as Stripe does.
      const customer = customers.get(sub.customer)!;
      customer.balance += lines.reduce((n, l) => n + l.amount, 0);
    }
    emit('customer.subscription.deleted', sub);
    if (invoice) emitInvoiceEvents(invoice);
    return invoice;
  }

  /** The next time-driven step of a subscription, if due by `until`. */
  function nextStep(sub: Obj, until: number): { at: number; run: () => void } | undefined {
    const state = subStates.get(sub.id);
    // A first invoice still unpaid 23 hours on: the subscription expires, never having started (as Stripe's do).
    if (state && sub.status === 'incomplete' && sub.created + 23 * HOUR <= until) {
      return {
        at: sub.created + 23 * HOUR,
        run: () => {
          sub.status = 'incomplete_expired';
          sub.ended_at = sub.created + 23 * HOUR;
          emit('customer.subscription.deleted', sub);
        },
      };
    }
    if (!state || !['active', 'trialing', 'past_due'].includes(sub.status)) return undefined;
    if (sub.status === 'trialing' && !state.trialWillEndSent && sub.trial_end - 3 * DAY <= until) {
      const at = Math.max(sub.trial_end - 3 * DAY, sub.created);
      return {
        at,
        run: () => {
          state.trialWillEndSent = true;
          emit('customer.subscription.trial_will_end', sub);
        },
      };
    }
    if (sub.cancel_at !== null && sub.cancel_at <= sub.current_period_end && sub.cancel_at <= until) {
      return {
        at: sub.cancel_at,
        run: () => {
          const start = sub.current_period_start;
          const at = sub.cancel_at;
          const pending = [...state.pending, ...cycleLines(sub, start, at, { start, end: at }).filter((l) => isMetered(l.price!) && l.amount !== 0)];
          state.pending = [];
          sub.status = 'canceled';
          sub.ended_at = at;
          const invoice = pending.length ? createInvoice(sub, 'subscription_cycle', pending, start, at) : undefined;
          emit('customer.subscription.deleted', sub);
          if (invoice) emitInvoiceEvents(invoice);
        },
      };
    }
    if (sub.current_period_end <= until) {
      return {
        at: sub.current_period_end,
        run: () => {
          const before = clone(sub);
          const prevStart = sub.current_period_start;
          const prevEnd = sub.current_period_end;
          state.k += 1;
          const nextEnd = addInterval(state.anchor, state.interval, state.intervalCount * state.k);
          if (sub.status === 'trialing') sub.status = 'active';
          syncPeriods(sub, prevEnd, nextEnd);
          const lines = [...cycleLines(sub, prevEnd, nextEnd, { start: prevStart, end: prevEnd }), ...state.pending];
          state.pending = [];
          const invoice = createInvoice(sub, 'subscription_cycle', lines, prevStart, prevEnd);
          emit('customer.subscription.updated', sub, diff(before, sub));
          emitInvoiceEvents(invoice);
          markPastDue(sub, invoice);
        },
      };
    }
    return undefined;
  }

  function runDue(until: number) {
    for (let guard = 0; guard < 100_000; guard++) {
      let best: { at: number; run: () => void } | undefined;
      for (const sub of subscriptions.values()) {
        const step = nextStep(sub, until);
        if (step && (!best || step.at < best.at)) best = step;
      }
      for (const s of sessions.values()) {
        if (s.status === 'open' && s.expires_at <= until && (!best || s.expires_at < best.at)) {
          best = { at: s.expires_at, run: () => expireSession(s) };
        }
      }
      if (!best) return;
      clockOverride = best.at;
      try {
        best.run();
      } finally {
        clockOverride = undefined;
      }
    }
  }

  function expireSession(s: Obj) {
    s.status = 'expired';
    s.url = null;
    emit('checkout.session.expired', s);
  }

  function completeCheckout(id: string, o: { email?: string; name?: string; address?: Obj; taxId?: { type: string; value: string } } = {}): CompletedCheckout {
    const s = sessions.get(id);
    if (!s) throw noSuch('checkout.session', id, 'id', 404);
    if (s.status !== 'open') throw invalid(`This Checkout Session is ${s.status} and can no longer be completed.`);
    // Stripe's page does not let the customer pay without the address it asks for: one a test customer would type.
    if (s.billing_address_collection === 'required') o = { ...o, name: o.name ?? 'Erika Mustermann', address: o.address ?? { line1: 'Musterstraße 1', postal_code: '10115', city: 'Berlin', country: 'DE' } };
    const firstEvent = eventLog.length;
    let customer = s.customer ? customers.get(s.customer) : undefined;
    if (!customer) {
      customer = createCustomer({ email: s.customer_email ?? o.email ?? 'customer@example.com', name: o.name ?? null });
      if (o.address) customer.address = addressOf(o.address);
      emit('customer.created', customer);
    } else {
      // What Checkout collected goes onto the existing customer only where `customer_update` allows it; an email it lacked, always.
      const update = sessionCustomerUpdates.get(id) ?? {};
      const before = clone(customer);
      if (update.name === 'auto' && o.name) customer.name = o.name;
      if (update.address === 'auto' && o.address) customer.address = addressOf(o.address);
      if (!customer.email && o.email) customer.email = o.email;
      const changed = diff(before, customer);
      if (Object.keys(changed).length) emit('customer.updated', customer, changed);
    }
    if (o.taxId && s.tax_id_collection?.enabled) {
      const taxId = { id: newId('txi', 14), object: 'tax_id', country: o.address?.country ?? null, created: now(), customer: customer.id, livemode: false, type: o.taxId.type, value: o.taxId.value, verification: { status: 'pending', verified_address: null, verified_name: null } };
      customerTaxIds.set(customer.id, [...(customerTaxIds.get(customer.id) ?? []), taxId]);
    }
    const email = customer.email ?? o.email ?? 'customer@example.com';
    const items = sessionItems.get(id) ?? [];
    let sub: Obj | undefined;
    let invoice: Obj | undefined;
    if (s.mode === 'subscription') {
      const data = sessionSubData.get(id) ?? { metadata: {} };
      sub = createSubscription(customer, items, { metadata: data.metadata, trialDays: data.trialDays, description: data.description });
      invoice = createInvoice(sub, 'subscription_create', sub.status === 'trialing' ? trialLines(sub) : cycleLines(sub, sub.current_period_start, sub.current_period_end), sub.created, sub.created);
      if (invoice.status !== 'paid') {
        // Checkout collected a card that works: the first payment never declines.
        Object.assign(invoice, { status: 'paid', paid: true, amount_paid: invoice.amount_due, amount_remaining: 0, next_payment_attempt: null, auto_advance: false });
        invoice.status_transitions.paid_at = invoice.created;
      }
      s.subscription = sub.id;
    } else if (s.mode === 'payment') {
      s.payment_intent = newId('pi');
    } else {
      s.setup_intent = newId('seti');
    }
    s.status = 'complete';
    s.payment_status = s.mode === 'setup' ? 'no_payment_required' : (invoice ? invoice.amount_due : s.amount_total) === 0 ? 'no_payment_required' : 'paid';
    s.customer = customer.id;
    s.customer_details = { address: customer.address, email, name: customer.name, phone: customer.phone, tax_exempt: 'none', tax_ids: [] };
    s.url = null;
    emit('checkout.session.completed', s);
    if (sub) emit('customer.subscription.created', sub);
    if (invoice) emitInvoiceEvents(invoice);
    return {
      session: clone(s),
      customer: clone(customer),
      ...(sub ? { subscription: clone(sub) } : {}),
      ...(invoice ? { invoice: clone(invoice) } : {}),
      events: eventLog.slice(firstEvent).map(clone),
    };
  }

  const trialLines = (sub: Obj): LineSpec[] =>
    sub.items.data.map((item: Obj) => ({
      amount: 0,
      description: `Trial period for ${priceName(item.price)}`,
      price: item.price,
      quantity: isMetered(item.price) ? 0 : (item.quantity ?? 1),
      period: { start: sub.current_period_start, end: sub.current_period_end },
      proration: false,
      subscriptionItem: item.id,
    }));

  // ------------------------------------------------------------ API handlers

  const ok = (body: unknown, status = 200): Result => ({ status, body });

  function paginate(items: Obj[], p: Obj, url: string): Obj {
    const limit = int(p.limit, 'limit') ?? 10;
    if (limit < 1 || limit > 100) throw invalid('This value must be between 1 and 100 (inclusive).', 'limit');
    let from = items;
    const after = str(p.starting_after, 'starting_after');
    const before = str(p.ending_before, 'ending_before');
    if (after) {
      const i = items.findIndex((x) => x.id === after);
      if (i < 0) throw invalid(`No such object: '${after}'`, 'starting_after', 'resource_missing');
      from = items.slice(i + 1);
    } else if (before) {
      const i = items.findIndex((x) => x.id === before);
      if (i < 0) throw invalid(`No such object: '${before}'`, 'ending_before', 'resource_missing');
      const head = items.slice(0, i);
      const page = head.slice(Math.max(0, head.length - limit));
      return { object: 'list', data: page.map(clone), has_more: head.length > limit, url };
    }
    return { object: 'list', data: from.slice(0, limit).map(clone), has_more: from.length > limit, url };
  }
  const newestFirst = (m: Map<string, Obj>) => [...m.values()].reverse();

  function expand(body: unknown, paths: string[]) {
    const walk = (node: any, segs: string[]) => {
      if (!node || typeof node !== 'object' || !segs.length) return;
      const [head, ...rest] = segs;
      if (node.object === 'list' && Array.isArray(node.data) && head === 'data') {
        for (const x of node.data) walk(x, rest);
        return;
      }
      // A customer's tax IDs come only when asked for (Stripe since API version 2020-08-27).
      if (head === 'tax_ids' && node.object === 'customer') {
        const data = (customerTaxIds.get(node.id) ?? []).map(clone);
        node.tax_ids = { object: 'list', data, has_more: false, total_count: data.length, url: `/v1/customers/${node.id}/tax_ids` };
        return;
      }
      if (head === 'line_items' && node.object === 'checkout.session') {
        node.line_items = lineItemsOf(node);
        walk(node.line_items, rest);
        return;
      }
      const v = node[head];
      if (typeof v === 'string' && registry.has(v)) node[head] = clone(registry.get(v));
      else if (Array.isArray(v)) node[head] = v.map((x) => (typeof x === 'string' && registry.has(x) ? clone(registry.get(x)) : x));
      const next = node[head];
      if (Array.isArray(next)) for (const x of next) walk(x, rest);
      else walk(next, rest);
    };
    for (const path of paths) walk(body, String(path).split('.'));
  }

  function lineItemsOf(s: Obj): Obj {
    const items = sessionItems.get(s.id) ?? [];
    return {
      object: 'list',
      data: items.map(({ price, quantity }, i) => {
        const amount = isMetered(price) ? 0 : (quantity ?? 1) * unitAmount(price);
        return {
          id: `li_${createHash('sha1').update(`${s.id}:${i}`).digest('hex').slice(0, 24)}`,
          object: 'item',
          amount_discount: 0,
          amount_subtotal: amount,
          amount_tax: 0,
          amount_total: amount,
          currency: price.currency,
          description: priceName(price),
          price: clone(price),
          quantity: isMetered(price) ? null : quantity,
        };
      }),
      has_more: false,
      url: `/v1/checkout/sessions/${s.id}/line_items`,
    };
  }

  function customerParams(p: Obj, c: Obj) {
    for (const k of ['email', 'name', 'description', 'phone'] as const) {
      const v = str(p[k], k);
      if (v !== undefined) c[k] = v === '' ? null : v;
    }
    if (p.preferred_locales !== undefined) c.preferred_locales = list(p.preferred_locales);
    if (p.address !== undefined) c.address = p.address === '' ? null : p.address;
    if (p.tax_exempt !== undefined) c.tax_exempt = str(p.tax_exempt, 'tax_exempt');
    if (p.metadata !== undefined) c.metadata = applyMetadata(c.metadata ?? {}, p.metadata);
  }

  function searchCustomers(query: string): Obj[] {
    const clauses = query.split(/\s+AND\s+/i).map((c) => c.trim()).filter(Boolean);
    const tests = clauses.map((clause) => {
      const m = /^(metadata\[['"](.+?)['"]\]|[a-z_]+)\s*:\s*['"](.*)['"]$/.exec(clause);
      if (!m) throw invalid(`Invalid search query: ${clause}`, 'query');
      const [, field, metaKey, value] = m;
      return (c: Obj) => (metaKey !== undefined ? c.metadata?.[metaKey] === value : field === 'email' || field === 'name' || field === 'phone' ? String(c[field] ?? '').toLowerCase() === value.toLowerCase() : String(c[field] ?? '') === value);
    });
    return newestFirst(customers).filter((c) => !c.deleted && tests.every((t) => t(c)));
  }

  function createSession(p: Obj): Obj {
    const mode = str(p.mode, 'mode');
    if (!mode) throw missing('mode');
    if (!['payment', 'setup', 'subscription'].includes(mode)) throw invalid(`Invalid mode: must be one of payment, setup, or subscription`, 'mode');
    const customer = p.customer !== undefined && p.customer !== '' ? customerFor(p.customer, 'customer') : undefined;
    if (customer && p.customer_email) throw invalid('You may only specify one of these parameters: customer, customer_email.', 'customer_email');
    if (p.customer_update !== undefined && !customer) throw invalid('`customer_update` can only be used with `customer`.', 'customer_update');
    const customerUpdate = (p.customer_update ?? {}) as Obj;
    for (const field of ['address', 'name', 'shipping']) {
      const v = str(customerUpdate[field], `customer_update[${field}]`);
      if (v !== undefined && !['auto', 'never'].includes(v)) throw invalid(`Invalid customer_update[${field}]: must be one of auto or never`, `customer_update[${field}]`);
    }
    const taxIds = bool(((p.tax_id_collection ?? {}) as Obj).enabled, 'tax_id_collection[enabled]') ?? false;
    const automaticTax = bool(((p.automatic_tax ?? {}) as Obj).enabled, 'automatic_tax[enabled]') ?? false;
    const rawItems = list(p.line_items) as Obj[];
    if (mode !== 'setup' && !rawItems.length) throw missing('line_items');
    const items = rawItems.map((li, i) => {
      if (!li || typeof li !== 'object') throw invalid('Invalid object', `line_items[${i}]`);
      const price = priceFor(li.price, `line_items[${i}][price]`);
      const quantity = int(li.quantity, `line_items[${i}][quantity]`) ?? null;
      if (quantity === null && !isMetered(price)) throw invalid(`Quantity is required. Add \`quantity\` to \`line_items[${i}]\``, `line_items[${i}][quantity]`, 'parameter_missing');
      return { price, quantity };
    });
    checkItems(items, (i) => `line_items[${i}]`, mode === 'subscription');
    if (mode === 'payment' && items.some((x) => x.price.recurring)) {
      throw invalid('You must be in `subscription` mode to use recurring prices.', 'line_items');
    }
    const sd = (p.subscription_data ?? {}) as Obj;
    const t = now();
    const id = `cs_test_${rand(58)}`;
    const amount = items.reduce((n, x) => n + (isMetered(x.price) ? 0 : (x.quantity ?? 1) * unitAmount(x.price)), 0);
    const currency = items[0]?.price.currency ?? null;
    const metadata = applyMetadata({}, p.metadata);
    const expiresAt = int(p.expires_at, 'expires_at') ?? t + DAY;
    const s: Obj = {
      id,
      object: 'checkout.session',
      adaptive_pricing: null,
      after_expiration: null,
      allow_promotion_codes: bool(p.allow_promotion_codes, 'allow_promotion_codes') ?? null,
      amount_subtotal: mode === 'setup' ? null : amount,
      amount_total: mode === 'setup' ? null : amount,
      automatic_tax: { enabled: automaticTax, liability: automaticTax ? { type: 'self' } : null, provider: automaticTax ? 'stripe' : null, status: automaticTax ? 'requires_location_inputs' : null },
      billing_address_collection: str(p.billing_address_collection, 'billing_address_collection') ?? null,
      cancel_url: str(p.cancel_url, 'cancel_url') ?? null,
      client_reference_id: str(p.client_reference_id, 'client_reference_id') ?? null,
      client_secret: null,
      collected_information: null,
      consent: null,
      consent_collection: null,
      created: t,
      currency,
      currency_conversion: null,
      custom_fields: [],
      custom_text: { after_submit: null, shipping_address: null, submit: null, terms_of_service_acceptance: null },
      customer: customer?.id ?? null,
      customer_account: null,
      customer_creation: customer ? null : mode === 'payment' ? 'if_required' : 'always',
      customer_details: customer ? { address: customer.address, email: customer.email, name: customer.name, phone: customer.phone, tax_exempt: customer.tax_exempt, tax_ids: null } : null,
      customer_email: str(p.customer_email, 'customer_email') ?? null,
      discounts: [],
      expires_at: expiresAt,
      invoice: null,
      invoice_creation: null,
      livemode: false,
      locale: str(p.locale, 'locale') ?? null,
      metadata,
      mode,
      payment_intent: null,
      payment_link: null,
      payment_method_collection: mode === 'subscription' ? 'always' : null,
      payment_method_configuration_details: null,
      payment_method_options: {},
      payment_method_types: ['card'],
      payment_status: mode === 'setup' ? 'no_payment_required' : 'unpaid',
      permissions: null,
      phone_number_collection: { enabled: false },
      recovered_from: null,
      saved_payment_method_options: null,
      setup_intent: null,
      shipping_address_collection: null,
      shipping_cost: null,
      shipping_options: [],
      status: 'open',
      submit_type: null,
      subscription: null,
      success_url: str(p.success_url, 'success_url') ?? null,
      tax_id_collection: { enabled: taxIds, required: taxIds ? 'never' : null },
      total_details: { amount_discount: 0, amount_shipping: 0, amount_tax: 0 },
      ui_mode: str(p.ui_mode, 'ui_mode') ?? 'hosted',
      url: `${publicBase()}/checkout/${id}`,
      wallet_options: null,
    };
    put(sessions, s);
    sessionItems.set(id, items);
    sessionCustomerUpdates.set(id, customerUpdate);
    sessionSubData.set(id, {
      metadata: applyMetadata({}, sd.metadata, 'subscription_data[metadata]'),
      trialDays: int(sd.trial_period_days, 'subscription_data[trial_period_days]'),
      description: str(sd.description, 'subscription_data[description]'),
    });
    return s;
  }

  function subscriptionFor(id: string, status = 404, param = 'id'): Obj {
    const sub = subscriptions.get(id);
    if (!sub) throw noSuch('subscription', id, param, status);
    return sub;
  }

  function updateSubscription(sub: Obj, p: Obj): Result {
    const state = subStates.get(sub.id)!;
    const allowedWhenCanceled = new Set(['metadata', 'cancellation_details', 'expand']);
    if (sub.status === 'canceled' && Object.keys(p).some((k) => !allowedWhenCanceled.has(k))) {
      throw invalid('A canceled subscription can only update its cancellation_details and metadata.', undefined);
    }
    const behavior = str(p.proration_behavior, 'proration_behavior') ?? 'create_prorations';
    if (!['create_prorations', 'none', 'always_invoice'].includes(behavior)) {
      throw invalid('Invalid proration_behavior: must be one of create_prorations, none, or always_invoice', 'proration_behavior');
    }
    const prorationDate = int(p.proration_date, 'proration_date') ?? now();
    const cancelAtPeriodEnd = bool(p.cancel_at_period_end, 'cancel_at_period_end');
    const cancelAt = p.cancel_at === '' ? null : int(p.cancel_at, 'cancel_at');
    const metadata = p.metadata !== undefined ? applyMetadata(sub.metadata, p.metadata) : undefined;

    // Validate every item change before touching anything.
    type Change = { kind: 'update' | 'add' | 'delete'; item?: Obj; price?: Obj; quantity?: number | null; metadata?: Obj };
    const changes: Change[] = (list(p.items) as Obj[]).map((raw, i) => {
      const param = `items[${i}]`;
      if (!raw || typeof raw !== 'object') throw invalid('Invalid object', param);
      const itemId = str(raw.id, `${param}[id]`);
      const item = itemId ? sub.items.data.find((x: Obj) => x.id === itemId) : undefined;
      if (itemId && !item) throw invalid(`Subscription item ${itemId} does not belong to subscription ${sub.id}.`, `${param}[id]`);
      if (bool(raw.deleted, `${param}[deleted]`)) {
        if (!item) throw missing(`${param}[id]`);
        return { kind: 'delete', item };
      }
      const price = raw.price !== undefined ? priceFor(raw.price, `${param}[price]`) : item?.price;
      if (!price) throw missing(`${param}[price]`);
      const quantity = int(raw.quantity, `${param}[quantity]`);
      if (quantity !== undefined && isMetered(price)) throw invalid(`Quantity should not be specified where usage_type is \`metered\`. Remove quantity from \`${param}\`.`, `${param}[quantity]`);
      if (quantity !== undefined && quantity < 0) throw invalid('This value must be greater than or equal to 0.', `${param}[quantity]`);
      const meta = raw.metadata !== undefined ? applyMetadata(item?.metadata ?? {}, raw.metadata, `${param}[metadata]`) : undefined;
      return item ? { kind: 'update', item, price, quantity, metadata: meta } : { kind: 'add', price, quantity: isMetered(price) ? null : (quantity ?? 1), metadata: meta };
    });
    const prospective = sub.items.data
      .filter((x: Obj) => !changes.some((c) => c.kind === 'delete' && c.item === x))
      .map((x: Obj) => {
        const c = changes.find((c) => c.item === x);
        return { price: c?.price ?? x.price, quantity: isMetered(c?.price ?? x.price) ? null : (c?.quantity ?? x.quantity ?? 1) };
      })
      .concat(changes.filter((c) => c.kind === 'add').map((c) => ({ price: c.price!, quantity: c.quantity ?? null })));
    if (changes.length) {
      if (!prospective.length) throw invalid('A subscription must have at least one active plan. To cancel a subscription, use DELETE.', 'items');
      checkItems(prospective, () => 'items', true);
      if (prospective.some((x: { price: Obj }) => x.price.currency !== sub.currency)) throw invalid('All prices on a subscription must have the same currency.', 'items');
    }

    const before = clone(sub);
    const prorations: LineSpec[] = [];
    const start = sub.current_period_start;
    const end = sub.current_period_end;
    const frac = end > start ? Math.min(1, Math.max(0, (end - prorationDate) / (end - start))) : 0;
    const prorate = (price: Obj, qty: number, sign: 1 | -1, itemId: string) => {
      if (isMetered(price) || !qty) return;
      const amount = Math.round(qty * unitAmount(price) * frac);
      if (!amount) return;
      prorations.push({
        amount: sign * amount,
        description: `${sign < 0 ? 'Unused' : 'Remaining'} time on ${qty} × ${priceName(price)} after ${isoDate(prorationDate)}`,
        price,
        quantity: qty,
        period: { start: prorationDate, end },
        proration: true,
        subscriptionItem: itemId,
      });
    };
    for (const c of changes) {
      if (c.kind === 'delete') {
        prorate(c.item!.price, c.item!.quantity ?? 0, -1, c.item!.id);
        sub.items.data = sub.items.data.filter((x: Obj) => x !== c.item);
      } else if (c.kind === 'add') {
        const item = newItem(sub.id, c.price!, c.quantity ?? null, c.metadata);
        sub.items.data.push(item);
        prorate(item.price, item.quantity ?? 0, 1, item.id);
      } else {
        const item = c.item!;
        const oldPrice = item.price;
        const oldQty = item.quantity ?? 0;
        const newQty = isMetered(c.price!) ? 0 : (c.quantity ?? item.quantity ?? 1);
        if (c.price!.id !== oldPrice.id || newQty !== oldQty) {
          prorate(oldPrice, oldQty, -1, item.id);
          prorate(c.price!, newQty, 1, item.id);
        }
        if (c.price!.id !== oldPrice.id) {
          item.price = clone(c.price!);
          item.plan = planOf(c.price!);
        }
        if (!isMetered(c.price!)) item.quantity = newQty;
        else delete item.quantity;
        if (c.metadata) item.metadata = c.metadata;
      }
    }
    syncPeriods(sub, start, end);
    if (metadata) sub.metadata = metadata;
    if (cancelAtPeriodEnd !== undefined) setCancelAtPeriodEnd(sub, cancelAtPeriodEnd);
    if (cancelAt !== undefined) {
      sub.cancel_at = cancelAt;
      sub.cancel_at_period_end = cancelAt !== null && cancelAt === sub.current_period_end;
      sub.canceled_at = cancelAt === null ? null : now();
      sub.cancellation_details = cancelAt === null ? { comment: null, feedback: null, reason: null } : { ...sub.cancellation_details, reason: 'cancellation_requested' };
    }
    if (p.cancellation_details && typeof p.cancellation_details === 'object') {
      const cd = p.cancellation_details as Obj;
      sub.cancellation_details = { ...sub.cancellation_details, ...(cd.comment !== undefined ? { comment: cd.comment || null } : {}), ...(cd.feedback !== undefined ? { feedback: cd.feedback || null } : {}) };
    }
    if (p.description !== undefined) sub.description = str(p.description, 'description') || null;

    let invoice: Obj | undefined;
    if (behavior === 'always_invoice' && prorations.length) {
      invoice = createInvoice(sub, 'subscription_update', [...prorations, ...state.pending], prorationDate, prorationDate);
      state.pending = [];
    } else if (behavior === 'create_prorations') {
      state.pending.push(...prorations);
    }
    const changed = diff(before, sub);
    if (Object.keys(changed).length) emit('customer.subscription.updated', sub, changed);
    if (invoice) {
      emitInvoiceEvents(invoice);
      markPastDue(sub, invoice);
    }
    return ok(sub);
  }

  function createSubscriptionApi(p: Obj): Result {
    const customer = customerFor(p.customer, 'customer');
    const raw = list(p.items) as Obj[];
    if (!raw.length) throw missing('items');
    const items = raw.map((it, i) => {
      const price = priceFor(it?.price, `items[${i}][price]`);
      const quantity = int(it?.quantity, `items[${i}][quantity]`);
      return { price, quantity: quantity ?? (isMetered(price) ? null : 1), metadata: applyMetadata({}, it?.metadata, `items[${i}][metadata]`) };
    });
    checkItems(items, (i) => `items[${i}]`, true);
    const sub = createSubscription(customer, items, {
      metadata: applyMetadata({}, p.metadata),
      trialDays: int(p.trial_period_days, 'trial_period_days'),
      description: str(p.description, 'description') ?? null,
      cancelAtPeriodEnd: bool(p.cancel_at_period_end, 'cancel_at_period_end'),
    });
    const invoice = createInvoice(sub, 'subscription_create', sub.status === 'trialing' ? trialLines(sub) : cycleLines(sub, sub.current_period_start, sub.current_period_end), sub.created, sub.created);
    if (invoice.status !== 'paid') sub.status = 'incomplete';
    emit('customer.subscription.created', sub);
    emitInvoiceEvents(invoice);
    return ok(sub);
  }

  function createMeterEvent(p: Obj): Result {
    const eventName = str(p.event_name, 'event_name');
    if (!eventName) throw missing('event_name');
    if (eventName.length > 100) throw invalid('event_name must be at most 100 characters.', 'event_name');
    if (p.payload === undefined || p.payload === '') throw missing('payload');
    if (typeof p.payload !== 'object' || Array.isArray(p.payload)) throw invalid('Invalid hash', 'payload');
    const t = now();
    const timestamp = int(p.timestamp, 'timestamp') ?? t;
    if (timestamp < t - 35 * DAY || timestamp > t + 300) {
      throw invalid('The timestamp must be within the past 35 calendar days or up to 5 minutes in the future.', 'timestamp');
    }
    const identifier = str(p.identifier, 'identifier') || randomUUID();
    if (identifier.length > 100) throw invalid('identifier must be at most 100 characters.', 'identifier');
    const seen = identifiers.get(identifier);
    if (seen !== undefined && seen > t - DAY) {
      throw invalid(`An event already exists with identifier ${identifier}.`, 'identifier', 'resource_already_exists', 400, { 'stripe-should-retry': 'false' });
    }
    identifiers.set(identifier, t);
    const payload = Object.fromEntries(Object.entries(p.payload as Obj).map(([k, v]) => [k, String(v)]));
    const meter = [...meters.values()].find((m) => m.event_name === eventName && m.status === 'active');
    const customerKey = meter?.customer_mapping.event_payload_key ?? 'stripe_customer_id';
    const valueKey = meter?.value_settings.event_payload_key ?? 'value';
    meterLog.push({ identifier, event_name: eventName, payload, timestamp, created: t, customer: payload[customerKey], value: Number(payload[valueKey]) });
    return ok({ object: 'billing.meter_event', created: t, event_name: eventName, identifier, livemode: false, payload, timestamp });
  }

  function eventSummaries(meterId: string, p: Obj): Result {
    const meter = meters.get(meterId);
    if (!meter) throw noSuch('billing meter', meterId, 'id', 404);
    const customer = str(p.customer, 'customer');
    if (!customer) throw missing('customer');
    if (!customers.has(customer)) throw noSuch('customer', customer, 'customer');
    const start = int(p.start_time, 'start_time');
    if (start === undefined) throw missing('start_time');
    const end = int(p.end_time, 'end_time');
    if (end === undefined) throw missing('end_time');
    if (start % 60 !== 0) throw invalid('start_time must be aligned with minute boundaries.', 'start_time');
    if (end % 60 !== 0) throw invalid('end_time must be aligned with minute boundaries.', 'end_time');
    if (end <= start) throw invalid('end_time must be after start_time.', 'end_time');
    const window = str(p.value_grouping_window, 'value_grouping_window');
    if (window !== undefined && window !== 'hour' && window !== 'day') throw invalid('Invalid value_grouping_window: must be one of day or hour', 'value_grouping_window');
    const step = window === 'hour' ? 3600 : window === 'day' ? DAY : end - start;
    const buckets: Obj[] = [];
    for (let s = start; s < end; s += step) {
      const e = Math.min(s + step, end);
      buckets.push({
        id: `mtrusg_test_${createHash('sha1').update(`${meter.id}:${customer}:${s}:${e}`).digest('hex').slice(0, 24)}`,
        object: 'billing.meter_event_summary',
        aggregated_value: aggregate(meter, customer, s, e),
        end_time: e,
        livemode: false,
        meter: meter.id,
        start_time: s,
      });
    }
    return ok(paginate(buckets.reverse(), p, `/v1/billing/meters/${meter.id}/event_summaries`));
  }

  const routes: Route[] = [
    // Customers
    ['POST', /^\/v1\/customers$/, (_, p) => {
      const c = createCustomer({});
      customerParams(p, c);
      emit('customer.created', c);
      return ok(c);
    }],
    ['GET', /^\/v1\/customers$/, (_, p) => {
      const email = str(p.email, 'email');
      return ok(paginate(newestFirst(customers).filter((c) => !c.deleted && (!email || c.email === email) && inRange(c.created, p.created, 'created')), p, '/v1/customers'));
    }],
    ['GET', /^\/v1\/customers\/search$/, (_, p) => {
      const query = str(p.query, 'query');
      if (!query) throw missing('query');
      const found = searchCustomers(query);
      const limit = int(p.limit, 'limit') ?? 10;
      return ok({ object: 'search_result', data: found.slice(0, limit).map(clone), has_more: found.length > limit, next_page: null, url: '/v1/customers/search' });
    }],
    ['GET', /^\/v1\/customers\/([^/]+)$/, ([id]) => {
      const c = customers.get(id);
      if (!c) throw noSuch('customer', id, 'id', 404);
      return ok(c);
    }],
    ['POST', /^\/v1\/customers\/([^/]+)$/, ([id], p) => {
      const c = customerFor(id, 'id', 404);
      const before = clone(c);
      customerParams(p, c);
      const changed = diff(before, c);
      if (Object.keys(changed).length) emit('customer.updated', c, changed);
      return ok(c);
    }],
    ['DELETE', /^\/v1\/customers\/([^/]+)$/, ([id]) => {
      const c = customerFor(id, 'id', 404);
      for (const sub of subscriptions.values()) {
        if (sub.customer === id && sub.status !== 'canceled') cancelNow(sub, now());
      }
      emit('customer.deleted', c);
      const stub = { id, object: 'customer', deleted: true };
      customers.set(id, stub);
      registry.set(id, stub);
      return ok(stub);
    }],
    // Products and prices
    ['POST', /^\/v1\/products$/, (_, p) => {
      const name = str(p.name, 'name');
      if (!name) throw missing('name');
      const id = str(p.id, 'id');
      if (id && products.has(id)) throw invalid(`Product already exists.`, 'id', 'resource_already_exists');
      return ok(createProduct({ id, name, description: str(p.description, 'description') ?? null, metadata: applyMetadata({}, p.metadata) }));
    }],
    ['GET', /^\/v1\/products\/([^/]+)$/, ([id]) => {
      const product = products.get(id);
      if (!product) throw noSuch('product', id, 'id', 404);
      return ok(product);
    }],
    ['GET', /^\/v1\/products$/, (_, p) => ok(paginate(newestFirst(products), p, '/v1/products'))],
    ['POST', /^\/v1\/prices$/, (_, p) => {
      const currency = str(p.currency, 'currency');
      if (!currency) throw missing('currency');
      const productData = p.product_data as Obj | undefined;
      let product = str(p.product, 'product');
      if (product && !products.has(product)) throw noSuch('product', product, 'product');
      if (!product) {
        if (!productData?.name) throw missing('product');
        product = createProduct({ name: productData.name, metadata: applyMetadata({}, productData.metadata, 'product_data[metadata]') }).id;
      }
      const unit = int(p.unit_amount, 'unit_amount');
      const unitDecimal = str(p.unit_amount_decimal, 'unit_amount_decimal');
      if (unit === undefined && unitDecimal === undefined) throw missing('unit_amount');
      const rec = p.recurring as Obj | undefined;
      const interval = rec ? (str(rec.interval, 'recurring[interval]') as Interval | undefined) : undefined;
      if (rec && !interval) throw missing('recurring[interval]');
      if (interval && !['day', 'week', 'month', 'year'].includes(interval)) throw invalid('Invalid recurring[interval]: must be one of day, week, month, or year', 'recurring[interval]');
      const usageType = rec ? (str(rec.usage_type, 'recurring[usage_type]') as 'licensed' | 'metered' | undefined) : undefined;
      const meter = rec ? str(rec.meter, 'recurring[meter]') : undefined;
      if (meter && !meters.has(meter)) throw noSuch('billing meter', meter, 'recurring[meter]');
      if (usageType === 'metered' && !meter) throw invalid('A meter is required for prices with `usage_type=metered`.', 'recurring[meter]');
      const lookupKey = str(p.lookup_key, 'lookup_key');
      if (lookupKey) {
        const holder = [...prices.values()].find((x) => x.lookup_key === lookupKey);
        if (holder) {
          if (!bool(p.transfer_lookup_key, 'transfer_lookup_key')) throw invalid(`A price (\`${holder.id}\`) already uses that lookup key.`, 'lookup_key');
          holder.lookup_key = null;
        }
      }
      return ok(
        createPrice({
          id: newId('price'),
          currency,
          unit_amount: unit,
          unit_amount_decimal: unitDecimal,
          interval: interval ?? null,
          interval_count: rec ? int(rec.interval_count, 'recurring[interval_count]') : undefined,
          usage_type: usageType,
          meter,
          lookup_key: lookupKey,
          nickname: str(p.nickname, 'nickname'),
          product,
          metadata: applyMetadata({}, p.metadata),
        }),
      );
    }],
    ['GET', /^\/v1\/prices$/, (_, p) => {
      const keys = list(p.lookup_keys).map(String);
      const product = str(p.product, 'product');
      const active = bool(p.active, 'active');
      const type = str(p.type, 'type');
      return ok(
        paginate(
          newestFirst(prices).filter((x) => (!keys.length || keys.includes(x.lookup_key)) && (!product || x.product === product) && (active === undefined || x.active === active) && (!type || x.type === type)),
          p,
          '/v1/prices',
        ),
      );
    }],
    ['GET', /^\/v1\/prices\/([^/]+)$/, ([id]) => {
      const price = prices.get(id);
      if (!price) throw noSuch('price', id, 'id', 404);
      return ok(price);
    }],
    // Checkout
    ['POST', /^\/v1\/checkout\/sessions$/, (_, p) => ok(createSession(p))],
    ['GET', /^\/v1\/checkout\/sessions$/, (_, p) => {
      const customer = str(p.customer, 'customer');
      const subscription = str(p.subscription, 'subscription');
      const status = str(p.status, 'status');
      return ok(paginate(newestFirst(sessions).filter((s) => (!customer || s.customer === customer) && (!subscription || s.subscription === subscription) && (!status || s.status === status)), p, '/v1/checkout/sessions'));
    }],
    ['GET', /^\/v1\/checkout\/sessions\/([^/]+)\/line_items$/, ([id], p) => {
      const s = sessions.get(id);
      if (!s) throw noSuch('checkout.session', id, 'id', 404);
      return ok(paginate(lineItemsOf(s).data, p, `/v1/checkout/sessions/${id}/line_items`));
    }],
    ['GET', /^\/v1\/checkout\/sessions\/([^/]+)$/, ([id]) => {
      const s = sessions.get(id);
      if (!s) throw noSuch('checkout.session', id, 'id', 404);
      return ok(s);
    }],
    ['POST', /^\/v1\/checkout\/sessions\/([^/]+)\/expire$/, ([id]) => {
      const s = sessions.get(id);
      if (!s) throw noSuch('checkout.session', id, 'id', 404);
      if (s.status !== 'open') throw invalid(`Only Checkout Sessions with a status in ["open"] can be expired. This Checkout Session has a status of "${s.status}".`, undefined);
      expireSession(s);
      return ok(s);
    }],
    // Subscriptions
    ['POST', /^\/v1\/subscriptions$/, (_, p) => createSubscriptionApi(p)],
    ['GET', /^\/v1\/subscriptions$/, (_, p) => {
      const customer = str(p.customer, 'customer');
      const price = str(p.price, 'price');
      const status = str(p.status, 'status');
      return ok(
        paginate(
          newestFirst(subscriptions).filter(
            (s) =>
              (!customer || s.customer === customer) &&
              (!price || s.items.data.some((i: Obj) => i.price.id === price)) &&
              (status === 'all' ? true : status ? s.status === status : !['canceled', 'incomplete_expired'].includes(s.status)) &&
              inRange(s.created, p.created, 'created'),
          ),
          p,
          '/v1/subscriptions',
        ),
      );
    }],
    ['GET', /^\/v1\/subscriptions\/([^/]+)$/, ([id]) => ok(subscriptionFor(id))],
    ['POST', /^\/v1\/subscriptions\/([^/]+)$/, ([id], p) => updateSubscription(subscriptionFor(id), p)],
    ['DELETE', /^\/v1\/subscriptions\/([^/]+)$/, ([id], p) => {
      const sub = subscriptionFor(id);
      if (sub.status === 'canceled') throw invalid(`No such subscription: '${id}'`, 'id', 'resource_missing', 404);
      const cd = (p.cancellation_details ?? {}) as Obj;
      cancelNow(sub, now(), {
        invoiceNow: bool(p.invoice_now, 'invoice_now'),
        prorate: bool(p.prorate, 'prorate'),
        comment: str(cd.comment, 'cancellation_details[comment]'),
        feedback: str(cd.feedback, 'cancellation_details[feedback]'),
      });
      return ok(sub);
    }],
    // Billing portal
    ['POST', /^\/v1\/billing_portal\/sessions$/, (_, p) => {
      const customer = customerFor(p.customer, 'customer');
      const id = `bps_${rand(24)}`;
      const flow = p.flow_data && typeof p.flow_data === 'object' ? { type: (p.flow_data as Obj).type ?? null, after_completion: { type: 'portal_homepage', hosted_confirmation: null, redirect: null } } : null;
      return ok(
        put(portalSessions, {
          id,
          object: 'billing_portal.session',
          configuration: str(p.configuration, 'configuration') ?? 'bpc_emulator_default',
          created: now(),
          customer: customer.id,
          customer_account: null,
          flow,
          livemode: false,
          locale: str(p.locale, 'locale') ?? null,
          on_behalf_of: null,
          return_url: str(p.return_url, 'return_url') ?? null,
          url: `${publicBase()}/billing_portal/${id}`,
        }),
      );
    }],
    // Invoices
    ['GET', /^\/v1\/invoices$/, (_, p) => {
      const customer = str(p.customer, 'customer');
      const subscription = str(p.subscription, 'subscription');
      const status = str(p.status, 'status');
      return ok(
        paginate(
          newestFirst(invoices).filter((i) => (!customer || i.customer === customer) && (!subscription || i.subscription === subscription) && (!status || i.status === status) && inRange(i.created, p.created, 'created')),
          p,
          '/v1/invoices',
        ),
      );
    }],
    ['GET', /^\/v1\/invoices\/([^/]+)\/lines$/, ([id], p) => {
      const invoice = invoices.get(id);
      if (!invoice) throw noSuch('invoice', id, 'id', 404);
      return ok(paginate(invoice.lines.data, p, `/v1/invoices/${id}/lines`));
    }],
    ['GET', /^\/v1\/invoices\/([^/]+)$/, ([id]) => {
      const invoice = invoices.get(id);
      if (!invoice) throw noSuch('invoice', id, 'id', 404);
      return ok(invoice);
    }],
    ['POST', /^\/v1\/invoices\/([^/]+)\/pay$/, ([id]) => ok(payInvoice(id))],
    // Billing meters
    ['POST', /^\/v1\/billing\/meter_events$/, (_, p) => createMeterEvent(p)],
    ['POST', /^\/v1\/billing\/meters$/, (_, p) => {
      const displayName = str(p.display_name, 'display_name');
      if (!displayName) throw missing('display_name');
      const eventName = str(p.event_name, 'event_name');
      if (!eventName) throw missing('event_name');
      const formula = str((p.default_aggregation as Obj | undefined)?.formula, 'default_aggregation[formula]');
      if (!formula) throw missing('default_aggregation[formula]');
      if (!['sum', 'count', 'last'].includes(formula)) throw invalid('Invalid default_aggregation[formula]: must be one of count, last, or sum', 'default_aggregation[formula]');
      if ([...meters.values()].some((m) => m.event_name === eventName && m.status === 'active')) {
        throw invalid(`An active meter with event_name \`${eventName}\` already exists.`, 'event_name');
      }
      const cm = (p.customer_mapping ?? {}) as Obj;
      const vs = (p.value_settings ?? {}) as Obj;
      return ok(
        createMeter({
          event_name: eventName,
          display_name: displayName,
          formula: formula as 'sum' | 'count' | 'last',
          customer_payload_key: str(cm.event_payload_key, 'customer_mapping[event_payload_key]'),
          value_payload_key: str(vs.event_payload_key, 'value_settings[event_payload_key]'),
          event_time_window: str(p.event_time_window, 'event_time_window') ?? null,
        }),
      );
    }],
    ['GET', /^\/v1\/billing\/meters$/, (_, p) => {
      const status = str(p.status, 'status');
      return ok(paginate(newestFirst(meters).filter((m) => !status || m.status === status), p, '/v1/billing/meters'));
    }],
    ['GET', /^\/v1\/billing\/meters\/([^/]+)\/event_summaries$/, ([id], p) => eventSummaries(id, p)],
    ['GET', /^\/v1\/billing\/meters\/([^/]+)$/, ([id]) => {
      const meter = meters.get(id);
      if (!meter) throw noSuch('billing meter', id, 'id', 404);
      return ok(meter);
    }],
    ['POST', /^\/v1\/billing\/meters\/([^/]+)\/(deactivate|reactivate)$/, ([id, action]) => {
      const meter = meters.get(id);
      if (!meter) throw noSuch('billing meter', id, 'id', 404);
      const t = now();
      meter.status = action === 'deactivate' ? 'inactive' : 'active';
      meter.status_transitions = { deactivated_at: action === 'deactivate' ? t : null };
      meter.updated = t;
      return ok(meter);
    }],
    // Events
    ['GET', /^\/v1\/events$/, (_, p) => {
      const type = str(p.type, 'type');
      const types = list(p.types).map(String);
      return ok(
        paginate(
          [...eventLog].reverse().filter((e) => (!type || matchesType(type, e.type)) && (!types.length || types.includes(e.type)) && inRange(e.created, p.created, 'created')),
          p,
          '/v1/events',
        ),
      );
    }],
    ['GET', /^\/v1\/events\/([^/]+)$/, ([id]) => {
      const event = registry.get(id);
      if (!event || event.object !== 'event') throw noSuch('event', id, 'id', 404);
      return ok(event);
    }],
    // Webhook endpoints
    ['POST', /^\/v1\/webhook_endpoints$/, (_, p) => {
      const url = str(p.url, 'url');
      if (!url) throw missing('url');
      const events = list(p.enabled_events).map(String);
      if (!events.length) throw missing('enabled_events');
      const endpoint = addEndpoint(url, `whsec_${randomBytes(24).toString('hex')}`, events, { api_version: str(p.api_version, 'api_version'), description: str(p.description, 'description'), metadata: applyMetadata({}, p.metadata) });
      return ok({ ...endpoint.object, secret: endpoint.secret });
    }],
    ['GET', /^\/v1\/webhook_endpoints$/, (_, p) => ok(paginate([...endpoints].reverse().map((e) => e.object), p, '/v1/webhook_endpoints'))],
    ['GET', /^\/v1\/webhook_endpoints\/([^/]+)$/, ([id]) => {
      const endpoint = endpoints.find((e) => e.id === id);
      if (!endpoint) throw noSuch('webhook endpoint', id, 'id', 404);
      return ok(endpoint.object);
    }],
    ['DELETE', /^\/v1\/webhook_endpoints\/([^/]+)$/, ([id]) => {
      const i = endpoints.findIndex((e) => e.id === id);
      if (i < 0) throw noSuch('webhook endpoint', id, 'id', 404);
      if (endpoints[i] === defaultEndpoint) defaultEndpoint = undefined;
      endpoints.splice(i, 1);
      registry.delete(id);
      return ok({ id, object: 'webhook_endpoint', deleted: true });
    }],
  ];

  // ------------------------------------------------------------ HTTP

  const server: Server = createServer((req, res) => {
    inFlight.add(res);
    res.on('close', () => inFlight.delete(res));
    handle(req, res).catch((err) => {
      if (!res.headersSent) send(res, 500, { error: { type: 'api_error', message: `Emulator error: ${String(err)}` } });
      else res.destroy();
    });
  });

  function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
    if (res.destroyed) return;
    res.writeHead(status, { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) });
    res.end(body === undefined ? '' : JSON.stringify(body, null, 2));
  }

  function html(res: ServerResponse, status: number, title: string, body: string) {
    res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' });
    res.end(`<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title><style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}button{font-size:1rem;padding:.5rem 1.2rem;margin:.2rem 0}table{border-collapse:collapse}td{padding:.2rem .8rem .2rem 0}.note{color:#777;font-size:.85rem}</style></head><body>${body}<p class="note">Stripe emulator — no payment leaves this machine.</p></body></html>`);
  }

  const redirect = (res: ServerResponse, location: string) => {
    res.writeHead(303, { location });
    res.end();
  };

  async function readBody(req: IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }

  function apiKeyOf(req: IncomingMessage): string | undefined {
    const auth = req.headers.authorization;
    if (typeof auth !== 'string') return undefined;
    if (/^bearer /i.test(auth)) return auth.slice(7).trim() || undefined;
    if (/^basic /i.test(auth)) {
      const user = Buffer.from(auth.slice(6).trim(), 'base64').toString('utf8').split(':')[0];
      return user || undefined;
    }
    return undefined;
  }

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? '/', 'http://emulator');
    const method = (req.method ?? 'GET').toUpperCase();
    const raw = await readBody(req);
    const path = url.pathname;
    if (path.startsWith('/__emulator/')) return control(method, path, raw, res);
    if (/^\/(checkout|billing_portal|invoice)\//.test(path)) return page(method, path, raw, res);
    if (!path.startsWith('/v1/')) {
      return send(res, 404, { error: { message: `Unrecognized request URL (${method}: ${path}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.`, type: 'invalid_request_error' } });
    }

    const requestId = `req_${rand(14)}`;
    const apiKey = apiKeyOf(req);
    const idempotencyKey = typeof req.headers['idempotency-key'] === 'string' ? req.headers['idempotency-key'] : undefined;
    const stripeVersion = typeof req.headers['stripe-version'] === 'string' ? req.headers['stripe-version'] : undefined;
    let params: Obj = {};
    const record: StripeRequestRecord = { id: requestId, at: new Date().toISOString(), method, path, params, apiKey, idempotencyKey, stripeVersion, replayed: false };
    records.push(record);
    const headers: Record<string, string> = { 'request-id': requestId, 'stripe-version': stripeVersion ?? apiVersion, ...(idempotencyKey ? { 'idempotency-key': idempotencyKey } : {}) };
    const answer = (status: number, body: unknown, extra: Record<string, string> = {}) => {
      record.status = status;
      send(res, status, body, { ...headers, ...extra });
    };
    const fail = (e: StripeApiError) => answer(e.status, errorBody(e, requestId), e.headers);

    if (!apiKey) {
      return fail(new StripeApiError(401, { type: 'invalid_request_error', message: "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/." }, { 'www-authenticate': 'Basic realm="Stripe"' }));
    }
    if (opts.apiKey ? apiKey !== opts.apiKey : !/^(sk|rk)_test_\S+$/.test(apiKey)) {
      const masked = apiKey.length > 12 ? `${apiKey.slice(0, 8)}${'*'.repeat(Math.max(4, apiKey.length - 12))}${apiKey.slice(-4)}` : '****';
      return fail(new StripeApiError(401, { type: 'invalid_request_error', message: `Invalid API Key provided: ${masked}` }, { 'www-authenticate': 'Basic realm="Stripe"' }));
    }

    // Injected faults come first, as an overloaded API's would: nothing runs, nothing is stored for the idempotency key.
    const hangIndex = hangs.findIndex((h) => pathHits(path, method, h));
    if (hangIndex >= 0) {
      if (--hangs[hangIndex].times <= 0) hangs.splice(hangIndex, 1);
      record.fault = 'hang';
      return; // never answers; close() ends the socket
    }
    const faultIndex = faults.findIndex((f) => pathHits(path, method, f));
    if (faultIndex >= 0) {
      const fault = faults[faultIndex];
      if (--fault.times <= 0) faults.splice(faultIndex, 1);
      record.fault = 'error';
      return fail(faultError(fault));
    }

    params = { ...parseStripeForm(url.search.slice(1)), ...parseStripeForm(method === 'GET' ? '' : raw) };
    record.params = params;
    const route = routes.find(([m, re]) => m === method && re.test(path));
    if (!route) {
      return fail(new StripeApiError(404, { type: 'invalid_request_error', message: `Unrecognized request URL (${method}: ${path}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.` }));
    }

    // Idempotency (POST only, as Stripe: keys on GET and DELETE have no effect).
    let slot: IdempotencyEntry | undefined;
    const scoped = idempotencyKey ? `${apiKey}\u0000${idempotencyKey}` : '';
    if (idempotencyKey && method === 'POST') {
      if (idempotencyKey.length > 255) return fail(invalid('Idempotency keys can be up to 255 characters long.', undefined, 'idempotency_key_too_long'));
      const fingerprint = JSON.stringify(params);
      const stored = idempotency.get(scoped);
      if (stored && stored.at > now() - DAY) {
        if (stored.inFlight) {
          return fail(invalid(`There is currently another in-progress request using this Idempotent Key (that probably means you submitted twice, and the other request is still going through): ${idempotencyKey}. Please try again later.`, undefined, 'idempotency_key_in_use', 409));
        }
        if (stored.method !== method || stored.path !== path || stored.params !== fingerprint) {
          return fail(new StripeApiError(400, { type: 'idempotency_error', message: `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${idempotencyKey}' if you meant to execute a different request.` }));
        }
        record.replayed = true;
        return answer(stored.status!, stored.body, { 'idempotent-replayed': 'true', 'original-request': stored.requestId! });
      }
      slot = { method, path, params: fingerprint, at: now(), inFlight: true };
      idempotency.set(scoped, slot);
    }

    const m = route[1].exec(path)!.slice(1).map((s) => decodeURIComponent(s));
    currentRequest = { id: requestId, idempotency_key: idempotencyKey ?? null };
    try {
      const result = route[2](m, params);
      const body = clone(result.body);
      const expandPaths = list(params.expand).map(String);
      if (expandPaths.length) expand(body, expandPaths);
      if (slot) Object.assign(slot, { inFlight: false, status: result.status, body, requestId });
      return answer(result.status, body, result.headers);
    } catch (err) {
      if (slot) idempotency.delete(scoped); // failed validation: nothing stored, a retry runs again
      if (err instanceof StripeApiError) return fail(err);
      throw err;
    } finally {
      currentRequest = null;
    }
  }

  function page(method: string, path: string, raw: string, res: ServerResponse) {
    let m = /^\/checkout\/([^/]+)(?:\/(pay|cancel))?$/.exec(path);
    if (m) {
      const s = sessions.get(decodeURIComponent(m[1]));
      if (!s) return html(res, 404, 'Not found', '<h1>Checkout Session not found</h1>');
      if (m[2] === 'pay' && method === 'POST') {
        // As Stripe's page: an expired session takes no payment (a paid one, submitted twice, goes on to success).
        if (s.status === 'expired') {
          const back = s.cancel_url ? `<p><a href="${esc(s.cancel_url)}">Go back</a></p>` : '';
          return html(res, 410, 'Expired', `<h1>This Checkout Session has expired</h1><p>Nothing was charged. Start the checkout again.</p>${back}`);
        }
        if (s.status === 'open') {
          const form = parseStripeForm(raw);
          const address = form.line1 ? { line1: form.line1, postal_code: form.postal_code, city: form.city, country: form.country } : undefined;
          const taxId = form.vat_id ? { type: 'eu_vat', value: String(form.vat_id) } : undefined;
          completeCheckout(s.id, { email: form.email || undefined, name: form.name || undefined, address, taxId });
        }
        if (s.success_url) return redirect(res, s.success_url.replace(/\{CHECKOUT_SESSION_ID\}/g, s.id));
        return html(res, 200, 'Paid', '<h1>Payment complete</h1>');
      }
      if (m[2] === 'cancel') {
        if (s.cancel_url) return redirect(res, s.cancel_url);
        return html(res, 200, 'Canceled', '<h1>Checkout canceled</h1>');
      }
      const rows = (sessionItems.get(s.id) ?? [])
        .map(({ price, quantity }) => `<tr><td>${esc(quantity ?? 'metered')} × ${esc(priceName(price))}</td><td>${isMetered(price) ? 'by usage' : esc(money((quantity ?? 1) * unitAmount(price), price.currency))}${price.recurring ? ` / ${esc(price.recurring.interval)}` : ''}</td></tr>`)
        .join('');
      const emailField = s.customer ? '' : `<p><label>Email <input name="email" type="email" value="${esc(s.customer_email ?? '')}"></label></p>`;
      const taxIdField = s.tax_id_collection?.enabled ? `<p><label>VAT ID (businesses) <input name="vat_id"></label></p>` : '';
      const addressFields =
        s.billing_address_collection === 'required'
          ? `<p><label>Name <input name="name" required></label></p><p><label>Street <input name="line1" required></label> <label>Postal code <input name="postal_code" required></label> <label>City <input name="city" required></label> <label>Country <input name="country" value="DE" required></label></p>`
          : '';
      return html(
        res,
        200,
        'Checkout',
        `<h1>Checkout</h1><p>Session <code>${esc(s.id)}</code> — ${esc(s.status)}</p><table>${rows}</table>` +
          (s.status === 'open'
            ? `<form method="post" action="/checkout/${esc(s.id)}/pay">${emailField}${addressFields}${taxIdField}<button type="submit">Pay (card 4242 4242 4242 4242)</button></form><p><a href="/checkout/${esc(s.id)}/cancel">Cancel and go back</a></p>`
            : ''),
      );
    }
    m = /^\/billing_portal\/([^/]+)(?:\/subscriptions\/([^/]+)\/(cancel|renew))?$/.exec(path);
    if (m) {
      const ps = portalSessions.get(decodeURIComponent(m[1]));
      if (!ps) return html(res, 404, 'Not found', '<h1>Portal session not found</h1>');
      if (m[2] && method === 'POST') {
        const sub = subscriptions.get(decodeURIComponent(m[2]));
        if (sub && sub.customer === ps.customer && sub.status !== 'canceled') {
          const before = clone(sub);
          setCancelAtPeriodEnd(sub, m[3] === 'cancel');
          const changed = diff(before, sub);
          if (Object.keys(changed).length) emit('customer.subscription.updated', sub, changed);
        }
        return redirect(res, `/billing_portal/${ps.id}`);
      }
      const subs = [...subscriptions.values()].filter((s) => s.customer === ps.customer && s.status !== 'canceled');
      const invs = newestFirst(invoices).filter((i) => i.customer === ps.customer);
      const subRows = subs
        .map(
          (s) =>
            `<tr><td>${esc(s.items.data.map((i: Obj) => `${i.quantity ?? ''} ${priceName(i.price)}`).join(', '))}</td><td>${esc(s.status)}${s.cancel_at_period_end ? ` (cancels ${isoDate(s.current_period_end)})` : ` (renews ${isoDate(s.current_period_end)})`}</td><td><form method="post" action="/billing_portal/${esc(ps.id)}/subscriptions/${esc(s.id)}/${s.cancel_at_period_end ? 'renew' : 'cancel'}"><button>${s.cancel_at_period_end ? 'Renew plan' : 'Cancel plan'}</button></form></td></tr>`,
        )
        .join('');
      const invRows = invs.map((i) => `<tr><td><a href="/invoice/${esc(i.id)}">${esc(i.number)}</a></td><td>${esc(money(i.total, i.currency))}</td><td>${esc(i.status)}</td></tr>`).join('');
      return html(res, 200, 'Billing', `<h1>Billing</h1><h2>Subscriptions</h2><table>${subRows || '<tr><td>None</td></tr>'}</table><h2>Invoices</h2><table>${invRows || '<tr><td>None</td></tr>'}</table>${ps.return_url ? `<p><a href="${esc(ps.return_url)}">Return</a></p>` : ''}`);
    }
    m = /^\/invoice\/([^/]+)(\/pdf)?$/.exec(path);
    if (m) {
      const i = invoices.get(decodeURIComponent(m[1]));
      if (!i) return html(res, 404, 'Not found', '<h1>Invoice not found</h1>');
      const rows = i.lines.data.map((l: Obj) => `<tr><td>${esc(l.description)}</td><td>${esc(money(l.amount, i.currency))}</td></tr>`).join('');
      return html(res, 200, `Invoice ${i.number}`, `<h1>Invoice ${esc(i.number)}</h1><p>${esc(i.status)} — ${esc(isoDate(i.created))}</p><table>${rows}<tr><td>Tax</td><td>${esc(money(i.total_taxes.reduce((n: number, t: Obj) => n + t.amount, 0), i.currency))}</td></tr><tr><td><b>Total</b></td><td><b>${esc(money(i.total, i.currency))}</b></td></tr></table>`);
    }
    return html(res, 404, 'Not found', '<h1>Not found</h1>');
  }

  async function control(method: string, path: string, raw: string, res: ServerResponse) {
    let body: Obj;
    try {
      body = raw ? JSON.parse(raw) : {};
    } catch (err) {
      return send(res, 400, { error: { type: 'invalid_request_error', message: `Invalid JSON: ${(err as Error).message}` } });
    }
    try {
      let m = /^\/__emulator\/checkout\/([^/]+)\/complete$/.exec(path);
      if (m && method === 'POST') return send(res, 200, completeCheckout(decodeURIComponent(m[1]), body));
      if (path === '/__emulator/webhook-endpoint' && method === 'POST') {
        if (typeof body.url !== 'string' || !body.url) return send(res, 400, { error: { type: 'invalid_request_error', message: 'Expected {url, secret?, events?}' } });
        return send(res, 200, setWebhookEndpoint(body.url, { secret: body.secret, events: body.events }));
      }
      if (path === '/__emulator/webhook-endpoint' && method === 'DELETE') {
        setWebhookEndpoint(null);
        return send(res, 204, undefined);
      }
      if (path === '/__emulator/events' && method === 'GET') return send(res, 200, { data: eventLog.map(clone) });
      if (path === '/__emulator/events' && method === 'POST') {
        if (typeof body.type !== 'string' || !body.object || typeof body.object !== 'object') return send(res, 400, { error: { type: 'invalid_request_error', message: 'Expected {type, object, previous_attributes?}' } });
        return send(res, 200, emit(body.type, body.object, body.previous_attributes));
      }
      m = /^\/__emulator\/events\/([^/]+)\/redeliver$/.exec(path);
      if (m && method === 'POST') return send(res, 200, { data: await redeliver(decodeURIComponent(m[1]), Number(body.times ?? 1)) });
      if (path === '/__emulator/deliveries' && method === 'GET') return send(res, 200, { data: deliveryLog.map(clone) });
      if (path === '/__emulator/meter-events' && method === 'GET') return send(res, 200, { data: meterLog.map(clone) });
      if (path === '/__emulator/requests' && method === 'GET') return send(res, 200, { data: records.map(clone) });
      if (path === '/__emulator/faults' && method === 'POST') {
        if (body.hang) hangs.push({ ...body, times: Number(body.times ?? 1) });
        else if (Number(body.status) >= 400) faults.push({ ...body, status: Number(body.status), times: Number(body.times ?? 1) });
        else return send(res, 400, { error: { type: 'invalid_request_error', message: 'Expected {status>=400, times?, path?, method?} or {hang:true, times?, path?}' } });
        return send(res, 204, undefined);
      }
      if (path === '/__emulator/faults' && method === 'DELETE') {
        faults = [];
        hangs = [];
        return send(res, 204, undefined);
      }
      if (path === '/__emulator/advance-time' && method === 'POST') {
        const events = await advanceTime(Number(body.seconds ?? 0));
        return send(res, 200, { now: now(), events });
      }
      if (path === '/__emulator/clock' && method === 'GET') return send(res, 200, { now: now() });
      if (path === '/__emulator/decline-payments' && method === 'POST') {
        declinePayments(body.customer, body.decline ?? true);
        return send(res, 204, undefined);
      }
      if (path === '/__emulator/flush-webhooks' && method === 'POST') {
        await queue;
        return send(res, 204, undefined);
      }
      if (path === '/__emulator/reset' && method === 'POST') {
        reset();
        return send(res, 204, undefined);
      }
    } catch (err) {
      if (err instanceof StripeApiError) return send(res, err.status, errorBody(err, 'emulator'));
      return send(res, 400, { error: { type: 'invalid_request_error', message: (err as Error).message } });
    }
    return send(res, 404, { error: { type: 'invalid_request_error', message: `Unknown emulator route ${method} ${path}` } });
  }

  // ------------------------------------------------------------ helpers exposed

  async function advanceTime(seconds: number): Promise<Obj[]> {
    if (!Number.isFinite(seconds) || seconds < 0) throw new Error('advanceTime: seconds must be a non-negative number');
    const first = eventLog.length;
    offset += Math.floor(seconds);
    runDue(now());
    return eventLog.slice(first).map(clone);
  }

  async function redeliver(eventId: string, times = 1): Promise<StripeWebhookDelivery[]> {
    const event = registry.get(eventId);
    if (!event || event.object !== 'event') throw new Error(`No such event: '${eventId}'`);
    const targets = endpoints.filter((e) => e.events.some((p) => matchesType(p, event.type)));
    const pending: Promise<StripeWebhookDelivery>[] = [];
    for (let i = 0; i < times; i++) for (const endpoint of targets) pending.push(enqueueDelivery(endpoint, event, true));
    return (await Promise.all(pending)).map(clone);
  }

  function declinePayments(customer?: string, decline = true) {
    if (customer) {
      if (decline) declineCustomers.add(customer);
      else declineCustomers.delete(customer);
    } else {
      declineAll = decline;
      if (!decline) declineCustomers.clear();
    }
  }

  function seed() {
    for (const m of opts.meters ?? []) createMeter(m);
    for (const p of opts.prices ?? []) createPrice(p);
  }

  function reset() {
    offset = startAt === undefined ? 0 : startAt - realNow();
    for (const m of [registry, customers, products, prices, sessions, sessionItems, sessionSubData, sessionCustomerUpdates, customerTaxIds, subscriptions, subStates, invoices, portalSessions, meters, identifiers, eventPayloads, idempotency]) m.clear();
    meterLog.length = 0;
    eventLog.length = 0;
    deliveryLog.length = 0;
    records.length = 0;
    faults = [];
    hangs = [];
    declineAll = false;
    declineCustomers.clear();
    const keep = defaultEndpoint;
    endpoints.length = 0;
    defaultEndpoint = undefined;
    if (keep) setWebhookEndpoint(keep.url, { secret: keep.secret, events: keep.events });
    seed();
  }

  offset = startAt === undefined ? 0 : startAt - realNow();
  seed();
  if (opts.webhookUrl) setWebhookEndpoint(opts.webhookUrl);

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => (server.off('error', reject), resolve()));
  });
  const port = (server.address() as { port: number }).port;
  baseUrl = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const sdkHost = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;

  const throwPlain = <A extends unknown[], R>(fn: (...a: A) => R) => (...a: A): R => {
    try {
      return fn(...a);
    } catch (err) {
      if (err instanceof StripeApiError) throw new Error(err.detail.message);
      throw err;
    }
  };

  return {
    url: baseUrl,
    port,
    sdkOptions: { host: sdkHost, port, protocol: 'http' },
    webhookSecret: defaultSecret,
    apiVersion,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const res of inFlight) res.destroy();
        server.closeAllConnections();
      }),
    now,
    advanceTime,
    completeCheckout: throwPlain(completeCheckout),
    events: (filter) => eventLog.filter((e) => !filter?.type || matchesType(filter.type, e.type)).map(clone),
    deliveries: (filter) => deliveryLog.filter((d) => (!filter?.eventId || d.eventId === filter.eventId) && (!filter?.type || matchesType(filter.type, d.type))).map(clone),
    flushWebhooks: async () => {
      // Deliveries can enqueue while we wait (nothing does today, but be safe).
      for (let last: Promise<void> | undefined; last !== queue; ) await (last = queue);
    },
    sendEvent: (type, object, o) => clone(emit(type, object, o?.previousAttributes)),
    redeliver,
    setWebhookEndpoint,
    meterEvents: (filter) => meterLog.filter((e) => (!filter?.event_name || e.event_name === filter.event_name) && (!filter?.customer || e.customer === filter.customer)).map(clone),
    requests: (filter) => records.filter((r) => pathHits(r.path, r.method, filter ?? {})).map(clone),
    retrieve: (id) => (registry.has(id) ? clone(registry.get(id)) : undefined),
    failNext: (f) => void faults.push({ ...f, status: Number(f.status), times: Number(f.times ?? 1) }),
    hangNext: (h = {}) => void hangs.push({ ...h, times: Number(h.times ?? 1) }),
    clearFaults: () => {
      faults = [];
      hangs = [];
    },
    declinePayments,
    payInvoice: (id) => {
      try {
        return clone(payInvoice(id));
      } catch (err) {
        if (err instanceof StripeApiError) throw new Error(err.detail.message);
        throw err;
      }
    },
    reset,
  };
}
