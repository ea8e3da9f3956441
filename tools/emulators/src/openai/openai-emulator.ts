import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { EmulatorServer } from '../http-server.js';

/**
 * A wire-compatible stand-in for the Chat Completions API of OpenAI and of
 * Azure OpenAI, good enough for the official `openai` SDK (`OpenAI` and
 * `AzureOpenAI`) to work against it unchanged.
 *
 * OpenAI style, reachable under any path prefix ("endpoint"), so one server can
 * play several base URLs (`${url}/v1`, `${url}/openai-eu/v1`, …):
 *   POST /<prefix>/v1/chat/completions   (Authorization: Bearer <key>)
 *   GET  /<prefix>/v1/models, GET /<prefix>/v1/models/{id}
 *   POST /<prefix>/v1/moderations        (input containing "forbidden-topic" is flagged as harassment)
 * Azure style (`new AzureOpenAI({ endpoint: url, apiKey, apiVersion, deployment })`):
 *   POST /[<prefix>/]openai/deployments/{deployment}/chat/completions?api-version=…   (api-key: <key>)
 *   the key only in `api-key`, as Azure's key auth wants it: `Authorization: Bearer` is Entra ID's (tokens, not
 *   modelled here), so a key sent that way is refused with 401, as Azure refuses it;
 *   answers `x-ms-region` with the region's display name, as Azure does ("Sweden Central", per deployment,
 *   `azureRegions`, which takes slugs or display names) and `apim-request-id`;
 *   with content filtering on (`azureContentFilterResults`, default), like Azure's, a prompt whose last user
 *   message contains "forbidden-topic" is refused with 400 `content_filter` before any answer.
 *
 * Content is deterministic: `Echo: ` + the text of the last user message, or,
 * when that message starts with `#tokens=N`, N words `lorem`; `#finish=<reason>` in it makes that the finish reason.
 * Tools (function tools, as OpenAI takes them): the model calls each tool whose name the last user message
 * holds (only the first with `parallel_tool_calls: false`), the one `tool_choice` names, or with "required" the
 * first, with arguments made from the function's parameters (finish reason `tool_calls`; streamed as OpenAI
 * streams calls: id and name first, then the arguments in pieces); after the tools' results (`tool` messages
 * last) it answers `Tool results: ` + their contents. A tool message answering no earlier call is refused, as
 * OpenAI refuses it.
 * A token is a whitespace-separated word: completion_tokens = words in the
 * answer, prompt_tokens = words across the text of all messages.
 *
 * Inspection and fault injection in-process (see {@link OpenAIEmulator}) or over HTTP:
 *   GET /__emulator/requests[?kind=&endpoint=&operation=]   DELETE /__emulator/requests
 *   POST /__emulator/faults {status,times,endpoint?,deployment?,retryAfterSeconds?,inStream?} or {hang:true,times,afterTokens?,…}
 *   DELETE /__emulator/faults   PUT /__emulator/latency {firstTokenLatencyMs?,latencyPerTokenMs?,endpoint?,deployment?}
 *   POST /__emulator/reset
 */

export type OpenAIProviderKind = 'openai' | 'azure';
export type OpenAIOperation = 'chat.completions' | 'models' | 'moderations';

export interface EmulatedChatMessage {
  role: string;
  content?: unknown;
  [key: string]: unknown;
}

/** One request the emulator received on a provider route (not the /__emulator routes). */
export interface EmulatedOpenAIRequest {
  /** `x-request-id` the emulator answered with (Azure: also `apim-request-id`). */
  id: string;
  /** ISO timestamp of arrival. */
  at: string;
  kind: OpenAIProviderKind;
  operation: OpenAIOperation;
  /** OpenAI: the path prefix before `/v1`, without slashes ('' for `${url}/v1`, 'openai-eu' for `${url}/openai-eu/v1`). Azure: the deployment. */
  endpoint: string;
  /** Path prefix before `/v1` (OpenAI) or `/openai` (Azure), without slashes. */
  prefix: string;
  method: string;
  path: string;
  /** Azure only: the `api-version` query parameter. */
  apiVersion?: string;
  /** Azure only: the region answered in `x-ms-region`: its display name ('Sweden Central'), as Azure sends it. */
  region?: string;
  /** `model` of the body (Azure: falls back to the deployment). */
  model?: string;
  stream: boolean;
  /** Chat messages as sent ([] for models and moderations). */
  messages: EmulatedChatMessage[];
  /** Moderations only: the `input` as sent. */
  input?: unknown;
  /** The parsed JSON body (undefined when none or not JSON). */
  body?: unknown;
  /** OpenAI: the bearer token of `Authorization`. Azure: the `api-key` header (a bearer token there is Entra ID's, not a key). */
  apiKey?: string;
  headers: Record<string, string>;
  /** Status answered; undefined while nothing was answered (hanging, waiting for the first token). */
  status?: number;
  /** Set when an injected fault answered this request. */
  fault?: 'error' | 'hang';
  /** Completion tokens written so far (streams grow as chunks go out). */
  completionTokens: number;
  /** The whole response was written. */
  completed: boolean;
  /** The client closed the connection before the response was complete. */
  aborted: boolean;
}

/** Selects requests by provider route. */
export interface OpenAITarget {
  kind?: OpenAIProviderKind;
  /** Matches `EmulatedOpenAIRequest.endpoint`: an OpenAI path prefix ('openai-eu', '/openai-eu/' alike) or an Azure deployment. */
  endpoint?: string;
  /** An Azure deployment (Azure requests only). */
  deployment?: string;
}

export interface OpenAIRequestFilter extends OpenAITarget {
  operation?: OpenAIOperation;
  model?: string;
  stream?: boolean;
  aborted?: boolean;
}

export interface OpenAIFaultTarget extends OpenAITarget {
  /** Which operation the fault hits; default 'chat.completions'. */
  operation?: OpenAIOperation | 'any';
}

export interface OpenAIFault extends OpenAIFaultTarget {
  /** 429, 500, 503, 400, … */
  status: number;
  /** How many of the next matching requests fail this way (default 1). */
  times?: number;
  /** Sent as `retry-after` (and `retry-after-ms` on Azure, as Azure does). */
  retryAfterSeconds?: number;
  /**
   * Streamed chat completions only: answer 200 and send the error as the stream's first event, before any
   * token (as OpenAI does for a failure after it accepted the call); `status` picks the error body.
   */
  inStream?: boolean;
  /** Override the error body (defaults follow OpenAI's for each status). */
  message?: string;
  code?: string | null;
  type?: string;
}

export interface OpenAIHang extends OpenAIFaultTarget {
  /** How many of the next matching requests hang (default 1). */
  times?: number;
  /** Streams only: send the headers and this many tokens, then stall. Default: never answer at all. */
  afterTokens?: number;
}

export interface OpenAILatency {
  /** Delay before the first token (stream: before the role chunk; non-stream: part of the total). Default 0. */
  firstTokenLatencyMs?: number;
  /** Delay between tokens: token i goes out at firstTokenLatencyMs + i × latencyPerTokenMs. Default 0. */
  latencyPerTokenMs?: number;
}

export interface OpenAIEmulatorOptions extends OpenAILatency {
  port?: number;
  host?: string;
  /** When set, any other key is refused with 401 (both kinds). Default: any non-empty key. */
  apiKey?: string;
  /**
   * Region of each Azure deployment, answered in `x-ms-region`. A slug ('swedencentral') or a display name
   * ('Sweden Central'); the header carries the display name, as Azure's does (see {@link azureRegionDisplayName}).
   */
  azureRegions?: Record<string, string>;
  /** Region of deployments missing from `azureRegions` (slug or display name); default 'swedencentral' (answered 'Sweden Central'). */
  defaultAzureRegion?: string;
  /** When set, other Azure deployments answer 404 DeploymentNotFound. */
  azureDeployments?: string[];
  /** When set, other api-versions answer 400 "API version not supported" (default: any YYYY-MM-DD[-preview]). */
  azureApiVersions?: string[];
  /**
   * Azure's content-filter annotations (default true): `prompt_filter_results`
   * and `content_filter_results` in answers, and, like Azure, a first stream
   * chunk with `choices: []` carrying only `prompt_filter_results`.
   */
  azureContentFilterResults?: boolean;
  /** Listed by GET /v1/models; when given, chat with another model answers 404 model_not_found. */
  models?: string[];
}

export interface OpenAIEmulator extends EmulatorServer {
  /** Base URL for `new OpenAI({ baseURL })`: `${url}/v1`, or `${url}/<endpoint>/v1`. */
  openaiBaseUrl(endpoint?: string): string;
  /** `endpoint` for `new AzureOpenAI({ endpoint })` (= url, or `${url}/<prefix>`). */
  azureEndpoint(prefix?: string): string;
  /** Recorded requests, oldest first (copies: call again to see later changes such as `aborted`). */
  requests(filter?: OpenAIRequestFilter | ((r: EmulatedOpenAIRequest) => boolean)): EmulatedOpenAIRequest[];
  /** Resolves with the first recorded request matching, polling until `timeoutMs` (default 5000). */
  waitForRequest(filter: OpenAIRequestFilter | ((r: EmulatedOpenAIRequest) => boolean), timeoutMs?: number): Promise<EmulatedOpenAIRequest>;
  /** The next `times` matching requests fail with an OpenAI-shaped error. */
  failNext(fault: OpenAIFault): void;
  /** The next `times` matching requests never answer (or stall mid-stream with `afterTokens`). */
  hangNext(hang?: OpenAIHang): void;
  /** Change latency from now on: for everything, or only for an endpoint/deployment when given. */
  setLatency(latency: OpenAILatency & OpenAITarget): void;
  /** Forget the recorded requests. */
  clearRequests(): void;
  /** Forget requests, faults, hangs and latency changes (back to the construction options). */
  reset(): void;
}

const DEFAULT_MODELS = ['gpt-4o', 'gpt-4o-mini', 'gpt-4.1', 'gpt-4.1-mini', 'gpt-4.1-nano', 'omni-moderation-latest', 'text-embedding-3-small'];
const MAX_HINT_TOKENS = 100_000;
const MODERATION_CATEGORIES = [
  'harassment', 'harassment/threatening', 'hate', 'hate/threatening', 'illicit', 'illicit/violent',
  'self-harm', 'self-harm/intent', 'self-harm/instructions', 'sexual', 'sexual/minors', 'violence', 'violence/graphic',
];
const SAFE = { filtered: false, severity: 'safe' };
const CONTENT_FILTER = { hate: SAFE, self_harm: SAFE, sexual: SAFE, violence: SAFE };
const OPENAI_ROUTE = /^(?:\/(.+?))?\/v1\/(chat\/completions|models(?:\/([^/]+))?|moderations)$/;
const AZURE_ROUTE = /^(?:\/(.+?))?\/openai\/deployments\/([^/]+)\/(.+)$/;

/** Azure region slugs (as in ARM and model catalogs) and the display names Azure OpenAI answers in `x-ms-region`. */
const AZURE_REGION_NAMES: Record<string, string> = {
  swedencentral: 'Sweden Central',
  swedensouth: 'Sweden South',
  germanywestcentral: 'Germany West Central',
  germanynorth: 'Germany North',
  westeurope: 'West Europe',
  northeurope: 'North Europe',
  francecentral: 'France Central',
  francesouth: 'France South',
  italynorth: 'Italy North',
  polandcentral: 'Poland Central',
  spaincentral: 'Spain Central',
  switzerlandnorth: 'Switzerland North',
  switzerlandwest: 'Switzerland West',
  norwayeast: 'Norway East',
  uksouth: 'UK South',
  ukwest: 'UK West',
  eastus: 'East US',
  eastus2: 'East US 2',
  westus: 'West US',
  westus2: 'West US 2',
  westus3: 'West US 3',
  centralus: 'Central US',
  northcentralus: 'North Central US',
  southcentralus: 'South Central US',
  canadaeast: 'Canada East',
  canadacentral: 'Canada Central',
  brazilsouth: 'Brazil South',
  australiaeast: 'Australia East',
  japaneast: 'Japan East',
  koreacentral: 'Korea Central',
  southindia: 'South India',
  southeastasia: 'Southeast Asia',
  southafricanorth: 'South Africa North',
  uaenorth: 'UAE North',
};

/**
 * The display name Azure answers in `x-ms-region` for a region given as a slug ('swedencentral' → 'Sweden Central').
 * A display name, or a slug this table does not know, passes through unchanged.
 */
export function azureRegionDisplayName(region: string): string {
  return AZURE_REGION_NAMES[region.toLowerCase()] ?? region;
}

const norm = (s: string) => s.replace(/^\/+|\/+$/g, '');
const words = (s: string) => s.match(/\S+/g)?.length ?? 0;
const rnd = (n: number) => randomBytes(n).toString('hex');

/** Text of a message `content`: a string, or the text parts of a content array. */
function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content
    .map((p) => (typeof p === 'string' ? p : p && typeof p === 'object' && typeof (p as { text?: unknown }).text === 'string' ? (p as { text: string }).text : ''))
    .filter(Boolean)
    .join(' ');
}

/** The deterministic answer to a conversation. */
function lastUserText(messages: EmulatedChatMessage[]): string {
  return textOf([...messages].reverse().find((m) => m?.role === 'user')?.content);
}

export function emulatedAnswer(messages: EmulatedChatMessage[]): string {
  if (messages.at(-1)?.role === 'tool') {
    const results = messages.slice(messages.findLastIndex((m) => m.role !== 'tool') + 1);
    return `Tool results: ${results.map((m) => textOf(m.content)).join('; ')}`;
  }
  const text = lastUserText(messages);
  const hint = /^#tokens=(\d+)(?:\s|$)/.exec(text);
  if (hint) return Array.from({ length: Math.min(Number(hint[1]), MAX_HINT_TOKENS) }, () => 'lorem').join(' ');
  return `Echo: ${text}`;
}

interface EmulatedTool {
  type: 'function';
  function: { name: string; parameters?: { properties?: Record<string, { type?: string; enum?: unknown[] }> } };
}

/** A call the emulated model makes of one of the request's tools. */
interface EmulatedToolCall {
  id: string;
  name: string;
  arguments: string;
}

/** What OpenAI refuses of a request's tools and tool messages: [message, param], or undefined when it is fine. */
function toolsRefusal(body: Record<string, any>, messages: EmulatedChatMessage[]): [string, string] | undefined {
  const tools: unknown = body.tools;
  if (tools != null) {
    if (!Array.isArray(tools)) return ["Invalid type for 'tools': expected an array.", 'tools'];
    const bad = tools.findIndex((t) => t?.type !== 'function' || typeof t?.function?.name !== 'string');
    if (bad >= 0) return [`Missing required parameter: 'tools[${bad}].function.name'.`, `tools[${bad}]`];
  }
  const noTools = !(Array.isArray(tools) && tools.length);
  if (body.tool_choice != null && noTools) return ["Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.", 'tool_choice'];
  if (body.parallel_tool_calls != null && noTools) return ["Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only allowed when 'tools' are specified.", 'parallel_tool_calls'];
  // Each call of an assistant turn is answered by the tool messages right after it (the end of the list closes the last turn).
  let open = new Set<string>();
  let openAt = -1;
  for (const [i, m] of [...messages, { role: 'end' }].entries()) {
    if (m.role === 'tool') {
      if (!open.delete(String(m.tool_call_id))) return ["Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.", `messages.[${i}].role`];
      continue;
    }
    if (open.size) {
      return [`An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: ${[...open].join(', ')}`, `messages.[${openAt}].role`];
    }
    open = new Set(Array.isArray(m.tool_calls) ? (m.tool_calls as { id?: string }[]).map((c) => String(c?.id)) : []);
    openAt = i;
  }
  return undefined;
}

/** The calls the emulated model makes, if any (see the header). */
function emulatedToolCalls(body: Record<string, any>, messages: EmulatedChatMessage[]): EmulatedToolCall[] {
  const tools = (Array.isArray(body.tools) ? body.tools : []) as EmulatedTool[];
  const choice = body.tool_choice;
  if (tools.length === 0 || choice === 'none' || messages.at(-1)?.role === 'tool') return [];
  let chosen: EmulatedTool[];
  if (choice && typeof choice === 'object') chosen = tools.filter((t) => t.function.name === choice.function?.name);
  else {
    const text = lastUserText(messages);
    chosen = tools.filter((t) => new RegExp(`(^|[^A-Za-z0-9_-])${t.function.name}($|[^A-Za-z0-9_-])`).test(text));
    if (chosen.length === 0 && choice === 'required') chosen = tools.slice(0, 1);
    if (body.parallel_tool_calls === false) chosen = chosen.slice(0, 1);
  }
  return chosen.map((t) => ({ id: `call_${randomBytes(18).toString('base64url')}`, name: t.function.name, arguments: JSON.stringify(argumentsFor(t)) }));
}

/** Arguments of the function's declared shape: the first allowed value, or one of the property's type. */
function argumentsFor(tool: EmulatedTool): Record<string, unknown> {
  const properties = tool.function.parameters?.properties ?? {};
  const example = (p: { type?: string; enum?: unknown[] }): unknown => {
    if (Array.isArray(p?.enum) && p.enum.length) return p.enum[0];
    switch (p?.type) {
      case 'string':
        return 'example';
      case 'number':
      case 'integer':
        return 1;
      case 'boolean':
        return true;
      case 'array':
        return [];
      case 'object':
        return {};
      default:
        return null;
    }
  };
  return Object.fromEntries(Object.entries(properties).map(([name, p]) => [name, example(p)]));
}

/** A call's arguments in the pieces a stream sends them in (a token each). */
const argumentPieces = (args: string): string[] => args.match(/[\s\S]{1,8}/g) ?? [''];

/** Splits content into tokens whose concatenation is the content exactly. */
function tokenize(content: string): string[] {
  const pieces: string[] = [...(content.match(/\s*\S+/g) ?? [])];
  const tail = content.slice(pieces.join('').length);
  if (tail) {
    if (pieces.length) pieces[pieces.length - 1] += tail;
    else pieces.push(tail);
  }
  return pieces;
}

/** Waits `ms`, or less if the request is aborted; its abort listener goes with it (a stream sleeps once per token). */
const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (ms <= 0 || signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });

function matches(r: EmulatedOpenAIRequest, f?: OpenAIRequestFilter | ((r: EmulatedOpenAIRequest) => boolean)): boolean {
  if (!f) return true;
  if (typeof f === 'function') return f(r);
  return (
    (f.kind === undefined || r.kind === f.kind) &&
    (f.endpoint === undefined || r.endpoint === norm(f.endpoint)) &&
    (f.deployment === undefined || (r.kind === 'azure' && r.endpoint === f.deployment)) &&
    (f.operation === undefined || r.operation === f.operation) &&
    (f.model === undefined || r.model === f.model) &&
    (f.stream === undefined || r.stream === f.stream) &&
    (f.aborted === undefined || r.aborted === f.aborted)
  );
}

const hits = (r: EmulatedOpenAIRequest, t: OpenAIFaultTarget) => {
  const operation = t.operation ?? 'chat.completions';
  return (operation === 'any' || r.operation === operation) && matches(r, { kind: t.kind, endpoint: t.endpoint, deployment: t.deployment });
};

function errorBody(kind: OpenAIProviderKind, status: number, over: { message?: string; code?: string | null; type?: string } = {}) {
  const defaults: Record<number, [string, string, string | null]> = {
    400: ['Emulated invalid request.', 'invalid_request_error', null],
    401: ['Incorrect API key provided.', 'invalid_request_error', 'invalid_api_key'],
    403: ['You are not allowed to sample from this model.', 'invalid_request_error', null],
    404: ['The model does not exist or you do not have access to it.', 'invalid_request_error', 'model_not_found'],
    429: ['Rate limit reached for requests. Please try again later.', 'requests', 'rate_limit_exceeded'],
    500: ['The server had an error while processing your request. Sorry about that!', 'server_error', null],
    503: ['The server is overloaded or not ready yet.', 'server_error', 'service_unavailable'],
  };
  const [message, type, code] = defaults[status] ?? [`Emulated failure ${status}.`, status >= 500 ? 'server_error' : 'invalid_request_error', null];
  // Azure puts the status in `code` where OpenAI has none (`{"error":{"code":"429",…}}`).
  const azureCode = kind === 'azure' && (status === 429 || status >= 500) ? String(status) : code;
  return { error: { message: over.message ?? message, type: over.type ?? type, param: null, code: over.code !== undefined ? over.code : azureCode } };
}

export async function startOpenAIEmulator(opts: OpenAIEmulatorOptions = {}): Promise<OpenAIEmulator> {
  const host = opts.host ?? '127.0.0.1';
  const models = opts.models ?? DEFAULT_MODELS;
  const filterResults = opts.azureContentFilterResults ?? true;
  const baseLatency: Required<OpenAILatency> = { firstTokenLatencyMs: opts.firstTokenLatencyMs ?? 0, latencyPerTokenMs: opts.latencyPerTokenMs ?? 0 };

  const records: EmulatedOpenAIRequest[] = [];
  let faults: (OpenAIFault & { times: number })[] = [];
  let hangs: (OpenAIHang & { times: number })[] = [];
  let latency = { ...baseLatency };
  let latencyOverrides: (OpenAILatency & OpenAITarget)[] = [];
  const inFlight = new Set<AbortController>();

  const take = <T extends OpenAIFaultTarget & { times: number }>(list: T[], r: EmulatedOpenAIRequest): T | undefined => {
    const i = list.findIndex((f) => hits(r, f));
    if (i < 0) return undefined;
    const found = list[i];
    if (--found.times <= 0) list.splice(i, 1);
    return found;
  };
  const latencyFor = (r: EmulatedOpenAIRequest): Required<OpenAILatency> => {
    const out = { ...latency };
    for (const o of latencyOverrides) {
      if (!matches(r, { endpoint: o.endpoint, deployment: o.deployment })) continue;
      if (o.firstTokenLatencyMs !== undefined) out.firstTokenLatencyMs = o.firstTokenLatencyMs;
      if (o.latencyPerTokenMs !== undefined) out.latencyPerTokenMs = o.latencyPerTokenMs;
    }
    return out;
  };
  const addFault = (f: OpenAIFault) => void faults.push({ ...f, times: Number(f.times ?? 1), status: Number(f.status) });
  const addHang = (h: OpenAIHang = {}) => void hangs.push({ ...h, times: Number(h.times ?? 1) });
  const setLatency = (l: OpenAILatency & OpenAITarget) => {
    if (l.endpoint !== undefined || l.deployment !== undefined) latencyOverrides.push({ ...l });
    else latency = { firstTokenLatencyMs: l.firstTokenLatencyMs ?? latency.firstTokenLatencyMs, latencyPerTokenMs: l.latencyPerTokenMs ?? latency.latencyPerTokenMs };
  };
  const list = (filter?: OpenAIRequestFilter | ((r: EmulatedOpenAIRequest) => boolean)) => records.filter((r) => matches(r, filter)).map((r) => structuredClone(r));
  const reset = () => {
    records.length = 0;
    faults = [];
    hangs = [];
    latency = { ...baseLatency };
    latencyOverrides = [];
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err) => {
      if (!res.headersSent) sendJson(res, 500, { error: { message: `Emulator error: ${String(err)}`, type: 'server_error', param: null, code: null } });
      else res.destroy();
    });
  });

  function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
    if (res.destroyed) return;
    const text = body === undefined ? '' : JSON.stringify(body);
    res.writeHead(status, { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) });
    res.end(text);
  }

  async function readBody(req: IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? '/', `http://${req.headers.host ?? host}`);
    const method = req.method ?? 'GET';
    const raw = await readBody(req);
    if (url.pathname.startsWith('/__emulator/')) return control(method, url, raw, res);

    const openai = OPENAI_ROUTE.exec(url.pathname);
    const azure = openai ? null : AZURE_ROUTE.exec(url.pathname);
    if (!openai && !azure) {
      return sendJson(res, 404, { error: { message: `Invalid URL (${method} ${url.pathname})`, type: 'invalid_request_error', param: null, code: null } });
    }
    const kind: OpenAIProviderKind = openai ? 'openai' : 'azure';
    const prefix = norm((openai ? openai[1] : azure![1]) ?? '');
    let operation: OpenAIOperation;
    if (openai) operation = openai[2] === 'chat/completions' ? 'chat.completions' : openai[2] === 'moderations' ? 'moderations' : 'models';
    else if (azure![3] === 'chat/completions') operation = 'chat.completions';
    else return sendJson(res, 404, { error: { code: '404', message: 'Resource not found' } });
    const wantedMethod = operation === 'models' ? 'GET' : 'POST';
    if (method !== wantedMethod) {
      return sendJson(res, 405, { error: { message: `Method ${method} not allowed for ${url.pathname}`, type: 'invalid_request_error', param: null, code: 'method_not_allowed' } });
    }

    let body: Record<string, any> | undefined;
    let invalidJson = false;
    if (raw) {
      try {
        body = JSON.parse(raw);
      } catch {
        invalidJson = true;
      }
    }
    const deployment = azure ? decodeURIComponent(azure[2]) : undefined;
    const auth = req.headers.authorization;
    const bearer = typeof auth === 'string' && /^bearer /i.test(auth) ? auth.slice(7).trim() : undefined;
    const apiKeyHeader = req.headers['api-key'];
    // Azure's key auth reads `api-key` only; a bearer token there is an Entra ID token, never a key.
    const apiKey = kind === 'azure' ? (typeof apiKeyHeader === 'string' && apiKeyHeader ? apiKeyHeader : undefined) : bearer;
    const id = kind === 'azure' ? randomUUID() : `req_${rnd(16)}`;
    const region = deployment === undefined ? undefined : azureRegionDisplayName(opts.azureRegions?.[deployment] ?? opts.defaultAzureRegion ?? 'swedencentral');
    const apiVersion = url.searchParams.get('api-version') ?? undefined;
    const record: EmulatedOpenAIRequest = {
      id,
      at: new Date().toISOString(),
      kind,
      operation,
      endpoint: deployment ?? prefix,
      prefix,
      method,
      path: url.pathname,
      ...(kind === 'azure' ? { apiVersion, region } : {}),
      model: typeof body?.model === 'string' ? body.model : deployment,
      stream: body?.stream === true,
      messages: operation === 'chat.completions' && Array.isArray(body?.messages) ? body.messages : [],
      ...(operation === 'moderations' ? { input: body?.input } : {}),
      body,
      apiKey,
      headers: Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : String(v)])),
      completionTokens: 0,
      completed: false,
      aborted: false,
    };
    if (operation === 'models' && openai?.[3]) record.model = decodeURIComponent(openai[3]);
    records.push(record);

    const ac = new AbortController();
    inFlight.add(ac);
    res.on('close', () => {
      inFlight.delete(ac);
      if (!res.writableFinished) {
        record.aborted = true;
        ac.abort();
      }
    });
    res.on('finish', () => void (record.completed = true));

    const headers: Record<string, string> =
      kind === 'azure'
        ? { 'x-request-id': id, 'apim-request-id': id, 'x-ms-region': region!, 'x-ms-client-request-id': String(req.headers['x-ms-client-request-id'] ?? id) }
        : { 'x-request-id': id, 'openai-version': '2020-10-01', 'openai-processing-ms': '1' };
    const answer = (status: number, out: unknown, extra: Record<string, string> = {}) => {
      record.status = status;
      sendJson(res, status, out, { ...headers, ...extra });
    };
    const invalid = (message: string, param: string | null, code: string | null = null) =>
      answer(400, { error: { message, type: 'invalid_request_error', param, code } });

    // Azure: a missing api-version is "Resource not found" (404), an unknown one 400, as Azure answers.
    if (kind === 'azure') {
      if (!apiVersion) return answer(404, { error: { code: '404', message: 'Resource not found' } });
      const supported = opts.azureApiVersions ? opts.azureApiVersions.includes(apiVersion) : /^\d{4}-\d{2}-\d{2}(-preview)?$/.test(apiVersion);
      if (!supported) return answer(400, { error: { code: 'BadRequest', message: 'API version not supported' } });
    }
    if (!apiKey || (opts.apiKey !== undefined && apiKey !== opts.apiKey)) {
      if (kind === 'azure') {
        // A key sent as `Authorization: Bearer` is taken for an Entra ID token and refused, as Azure refuses it.
        if (!apiKey && auth) {
          return answer(401, { error: { code: '401', message: 'Unauthorized. Access token is missing, invalid, audience is incorrect (https://cognitiveservices.azure.com), or have expired.' } });
        }
        return answer(401, { error: { code: '401', message: 'Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.' } });
      }
      return answer(401, {
        error: apiKey
          ? { message: `Incorrect API key provided: ${apiKey.slice(0, 3)}***${apiKey.slice(-4)}. You can find your API key at https://platform.openai.com/account/api-keys.`, type: 'invalid_request_error', param: null, code: 'invalid_api_key' }
          : { message: "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).", type: 'invalid_request_error', param: null, code: null },
      });
    }
    if (kind === 'azure' && opts.azureDeployments && !opts.azureDeployments.includes(deployment!)) {
      return answer(404, { error: { code: 'DeploymentNotFound', message: 'The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.' } });
    }

    // Injected faults come before validation, as a rate limiter's would.
    const hang = take(hangs, record);
    if (hang && (hang.afterTokens === undefined || !record.stream || operation !== 'chat.completions')) {
      record.fault = 'hang';
      return; // never answers; `aborted` turns true when the client gives up
    }
    const fault = hang ? undefined : take(faults, record);
    if (fault?.inStream && record.stream && operation === 'chat.completions') {
      record.fault = 'error';
      record.status = 200;
      res.writeHead(200, { ...headers, 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
      res.end(`data: ${JSON.stringify(errorBody(kind, fault.status, fault))}\n\n`);
      return;
    }
    if (fault) {
      record.fault = 'error';
      const extra: Record<string, string> = {};
      if (fault.retryAfterSeconds !== undefined) {
        extra['retry-after'] = String(fault.retryAfterSeconds);
        if (kind === 'azure') extra['retry-after-ms'] = String(Math.round(fault.retryAfterSeconds * 1000));
      }
      return answer(fault.status, errorBody(kind, fault.status, fault), extra);
    }

    if (invalidJson) return invalid('We could not parse the JSON body of your request. (HINT: This likely means you aren\'t using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.', null);

    if (operation === 'models') {
      const entry = (m: string) => ({ id: m, object: 'model', created: 1715367049, owned_by: 'system' });
      if (!openai?.[3]) return answer(200, { object: 'list', data: models.map(entry) });
      const wanted = decodeURIComponent(openai[3]);
      if (!models.includes(wanted)) return answer(404, { error: { message: `The model '${wanted}' does not exist`, type: 'invalid_request_error', param: 'model', code: 'model_not_found' } });
      return answer(200, entry(wanted));
    }

    if (operation === 'moderations') {
      const input = body?.input;
      if (input === undefined || input === null || input === '') return invalid("Missing required parameter: 'input'.", 'input', 'missing_required_parameter');
      const texts: string[] = Array.isArray(input) ? (input.every((i) => typeof i === 'string') ? input : [textOf(input)]) : [textOf(input)];
      const model = typeof body?.model === 'string' ? body.model : 'omni-moderation-latest';
      return answer(200, {
        id: `modr-${rnd(16)}`,
        model,
        results: texts.map((text) => {
          const flagged = /forbidden-topic/i.test(text);
          return {
            flagged,
            categories: Object.fromEntries(MODERATION_CATEGORIES.map((c) => [c, flagged && c === 'harassment'])),
            category_scores: Object.fromEntries(MODERATION_CATEGORIES.map((c) => [c, flagged && c === 'harassment' ? 0.97 : 0.0001])),
            category_applied_input_types: Object.fromEntries(MODERATION_CATEGORIES.map((c) => [c, ['text']])),
          };
        }),
      });
    }

    // Chat completions.
    if (!body || typeof body !== 'object' || Array.isArray(body)) return invalid('The request body must be a JSON object.', null);
    if (kind === 'openai' && typeof body.model !== 'string') return invalid('you must provide a model parameter', null);
    if (!Array.isArray(body.messages)) return invalid("Missing required parameter: 'messages'.", 'messages', 'missing_required_parameter');
    if (body.messages.length === 0) return invalid("Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.", 'messages', 'empty_array');
    if (body.messages.some((m: unknown) => !m || typeof m !== 'object' || typeof (m as EmulatedChatMessage).role !== 'string')) {
      return invalid("Missing required parameter: 'messages[0].role'.", 'messages', 'missing_required_parameter');
    }
    if (body.stream_options != null && body.stream !== true) return invalid("The 'stream_options' parameter is only allowed when 'stream' is enabled.", 'stream_options', null);
    if (kind === 'openai' && opts.models && !opts.models.includes(body.model)) {
      return answer(404, { error: { message: `The model \`${body.model}\` does not exist or you do not have access to it.`, type: 'invalid_request_error', param: null, code: 'model_not_found' } });
    }

    const messages = body.messages as EmulatedChatMessage[];
    // Azure takes the `developer` role from API version 2024-12-01-preview on; older ones refuse it.
    const developerAt = messages.findIndex((m) => m.role === 'developer');
    if (kind === 'azure' && developerAt >= 0 && apiVersion! < '2024-12-01-preview') {
      return invalid(`Invalid value: 'developer'. Supported values are: 'system', 'assistant', 'user', 'function', and 'tool'.`, `messages[${developerAt}].role`, 'invalid_value');
    }
    if (kind === 'azure' && filterResults && /forbidden-topic/i.test(messages.map((m) => textOf(m?.content)).join('\n'))) {
      // Azure's content filter judges the whole prompt (system message and history too) before the model sees it.
      return answer(400, {
        error: {
          message:
            "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry. To learn more about our content filtering policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766",
          type: null,
          param: 'prompt',
          code: 'content_filter',
          status: 400,
          innererror: { code: 'ResponsibleAIPolicyViolation', content_filter_result: { ...CONTENT_FILTER, hate: { filtered: true, severity: 'medium' } } },
        },
      });
    }
    const refusal = toolsRefusal(body, messages);
    if (refusal) return invalid(refusal[0], refusal[1]);
    const calls = emulatedToolCalls(body, messages);
    const promptTokens = messages.reduce((n, m) => n + words(textOf(m.content)), 0);
    let tokens = calls.length ? [] : tokenize(emulatedAnswer(messages));
    const limit = body.max_completion_tokens ?? body.max_tokens;
    // `#finish=<reason>` in the last message: the finish reason an OpenAI-compatible server says in its own words.
    let finishReason = calls.length ? 'tool_calls' : (/#finish=([a-z_]+)/.exec(textOf(messages.at(-1)?.content))?.[1] ?? 'stop');
    const callTokens = calls.reduce((n, c) => n + 1 + argumentPieces(c.arguments).length, 0);
    if (typeof limit === 'number' && limit >= 0 && tokens.length > limit) {
      tokens = tokens.slice(0, limit);
      finishReason = 'length';
    }
    const content = tokens.join('');
    const usage = (completion: number) => ({
      prompt_tokens: promptTokens,
      completion_tokens: completion,
      total_tokens: promptTokens + completion,
      prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
      completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
    });
    const completionId = `chatcmpl-${randomBytes(15).toString('base64url').slice(0, 29)}`;
    const created = Math.floor(Date.now() / 1000);
    const model = (record.model ?? 'gpt-4o') as string;
    const azureFilters = kind === 'azure' && filterResults;
    const promptFilterResults = [{ prompt_index: 0, content_filter_results: { ...CONTENT_FILTER, jailbreak: { filtered: false, detected: false } } }];
    const { firstTokenLatencyMs, latencyPerTokenMs } = latencyFor(record);

    const toolCalls = calls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } }));

    if (!record.stream) {
      await sleep(firstTokenLatencyMs + latencyPerTokenMs * Math.max(tokens.length + callTokens - 1, 0), ac.signal);
      if (ac.signal.aborted) return;
      record.completionTokens = tokens.length + callTokens;
      return answer(200, {
        id: completionId,
        object: 'chat.completion',
        created,
        model,
        choices: [
          {
            index: 0,
            message: { role: 'assistant', content: calls.length ? null : content, refusal: null, annotations: [], ...(calls.length ? { tool_calls: toolCalls } : {}) },
            logprobs: null,
            finish_reason: finishReason,
            ...(azureFilters ? { content_filter_results: { ...CONTENT_FILTER, protected_material_code: { filtered: false, detected: false }, protected_material_text: { filtered: false, detected: false } } } : {}),
          },
        ],
        usage: usage(tokens.length + callTokens),
        service_tier: 'default',
        system_fingerprint: 'fp_emulator',
        ...(azureFilters ? { prompt_filter_results: promptFilterResults } : {}),
      });
    }

    // Streaming: SSE `data:` lines, then `data: [DONE]`.
    const includeUsage = body.stream_options?.include_usage === true;
    record.status = 200;
    res.writeHead(200, { ...headers, 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
    res.flushHeaders();
    const send = (data: unknown) => {
      if (!ac.signal.aborted && !res.destroyed) res.write(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);
    };
    const chunk = (delta: Record<string, unknown>, finish: string | null) => ({
      id: completionId,
      object: 'chat.completion.chunk',
      created,
      model,
      system_fingerprint: 'fp_emulator',
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
      ...(includeUsage ? { usage: null } : {}),
    });
    // A content chunk is the same JSON but for its token: built once around a placeholder.
    const [contentHead, contentTail] = JSON.stringify(chunk({ content: '\u0000' }, null)).split('"\\u0000"');
    if (azureFilters) send({ choices: [], created: 0, id: '', model: '', object: '', prompt_filter_results: promptFilterResults });
    await sleep(firstTokenLatencyMs, ac.signal);
    if (calls.length) {
      // As OpenAI streams calls: no content, each call's id, type and name, then its arguments a piece at a time.
      send(chunk({ role: 'assistant', content: null, refusal: null }, null));
      // A stall (`afterTokens`) counts the pieces of calls as tokens.
      const stalls = () => hang?.afterTokens !== undefined && record.completionTokens >= hang.afterTokens;
      for (const [index, call] of calls.entries()) {
        if (stalls()) return void (record.fault = 'hang');
        send(chunk({ tool_calls: [{ index, id: call.id, type: 'function', function: { name: call.name, arguments: '' } }] }, null));
        record.completionTokens++;
        for (const piece of argumentPieces(call.arguments)) {
          if (stalls()) return void (record.fault = 'hang');
          await sleep(latencyPerTokenMs, ac.signal);
          if (ac.signal.aborted) return;
          send(chunk({ tool_calls: [{ index, function: { arguments: piece } }] }, null));
          record.completionTokens++;
        }
      }
    } else send(chunk({ role: 'assistant', content: '', refusal: null }, null));
    for (let i = 0; i < tokens.length; i++) {
      if (hang && hang.afterTokens !== undefined && i >= hang.afterTokens) {
        record.fault = 'hang';
        return; // stalls mid-stream
      }
      if (i > 0) await sleep(latencyPerTokenMs, ac.signal);
      if (ac.signal.aborted) return;
      send(contentHead + JSON.stringify(tokens[i]) + contentTail);
      record.completionTokens = i + 1;
    }
    if (hang && hang.afterTokens !== undefined) {
      record.fault = 'hang';
      return;
    }
    if (ac.signal.aborted) return;
    send(chunk({}, finishReason));
    if (includeUsage) send({ id: completionId, object: 'chat.completion.chunk', created, model, system_fingerprint: 'fp_emulator', choices: [], usage: usage(tokens.length + callTokens) });
    send('[DONE]');
    res.end();
  }

  function control(method: string, url: URL, raw: string, res: ServerResponse) {
    const json = () => JSON.parse(raw || '{}') as Record<string, any>;
    try {
      if (url.pathname === '/__emulator/requests' && method === 'GET') {
        const q = url.searchParams;
        const filter: OpenAIRequestFilter = {};
        if (q.has('kind')) filter.kind = q.get('kind') as OpenAIProviderKind;
        if (q.has('endpoint')) filter.endpoint = q.get('endpoint')!;
        if (q.has('deployment')) filter.deployment = q.get('deployment')!;
        if (q.has('operation')) filter.operation = q.get('operation') as OpenAIOperation;
        if (q.has('model')) filter.model = q.get('model')!;
        if (q.has('aborted')) filter.aborted = q.get('aborted') === 'true';
        return sendJson(res, 200, { data: list(filter) });
      }
      if (url.pathname === '/__emulator/requests' && method === 'DELETE') {
        records.length = 0;
        return sendJson(res, 204, undefined);
      }
      if (url.pathname === '/__emulator/faults' && method === 'POST') {
        const f = json();
        if (f.hang) addHang(f as OpenAIHang);
        else if (Number.isInteger(Number(f.status)) && Number(f.status) >= 400) addFault(f as OpenAIFault);
        else return sendJson(res, 400, { error: { message: 'Expected {status>=400,…} or {hang:true,…}', type: 'invalid_request_error', param: null, code: null } });
        return sendJson(res, 204, undefined);
      }
      if (url.pathname === '/__emulator/faults' && method === 'DELETE') {
        faults = [];
        hangs = [];
        return sendJson(res, 204, undefined);
      }
      if (url.pathname === '/__emulator/latency' && (method === 'PUT' || method === 'POST')) {
        setLatency(json());
        return sendJson(res, 204, undefined);
      }
      if (url.pathname === '/__emulator/reset' && method === 'POST') {
        reset();
        return sendJson(res, 204, undefined);
      }
    } catch (err) {
      return sendJson(res, 400, { error: { message: `Invalid JSON: ${(err as Error).message}`, type: 'invalid_request_error', param: null, code: null } });
    }
    return sendJson(res, 404, { error: { message: `Invalid URL (${method} ${url.pathname})`, type: 'invalid_request_error', param: null, code: null } });
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => (server.off('error', reject), resolve()));
  });
  const port = (server.address() as { port: number }).port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;

  return {
    url,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const ac of inFlight) ac.abort();
        server.close(() => resolve());
        server.closeAllConnections(); // hanging requests and keep-alive sockets
      }),
    openaiBaseUrl: (endpoint) => (endpoint && norm(endpoint) ? `${url}/${norm(endpoint)}/v1` : `${url}/v1`),
    azureEndpoint: (prefix) => (prefix && norm(prefix) ? `${url}/${norm(prefix)}` : url),
    requests: list,
    waitForRequest: async (filter, timeoutMs = 5000) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = records.find((r) => matches(r, filter));
        if (found) return structuredClone(found);
        if (Date.now() > deadline) throw new Error(`No emulated OpenAI request matched within ${timeoutMs} ms (${records.length} recorded)`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    failNext: addFault,
    hangNext: addHang,
    setLatency,
    clearRequests: () => void (records.length = 0),
    reset,
  };
}
