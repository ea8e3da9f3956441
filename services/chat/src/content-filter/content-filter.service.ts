import { Inject, Injectable } from '@nestjs/common';
import OpenAI from 'openai';
import type { Logger } from 'pino';
import { ProblemError, type ToolCall } from '@ally/contracts';
import { LOGGER } from '@ally/platform';
import type { Deployment } from '../catalog/model-catalog.js';
import { RouterService } from '../catalog/router.service.js';
import type { RoutingPolicy } from '../policy/policy.service.js';
import { ProviderClients } from '../completions/provider-clients.js';
import { CHAT_CONFIG, type ChatConfig } from '../config.js';
import { redactPii } from './pii-redaction.js';
import { blockedTermIn } from './blocked-terms.js';
import { providerErrorForLog } from '../completions/provider-error-log.js';

export interface PromptMessage {
  role: 'system' | 'user' | 'assistant' | 'developer' | 'tool';
  content: string;
  /** The participant's name (OpenAI's `name`), from `/v1/chat/completions` callers. */
  name?: string;
  /** An assistant turn's calls of the caller's tools (`/v1/chat/completions`), sent back with the history. */
  tool_calls?: ToolCall[];
  /** A tool message: the call whose result it is. */
  tool_call_id?: string;
}

/** A function the caller offers the model (OpenAI's function tool). */
export interface FunctionTool {
  type: 'function';
  function: { name: string; description?: string; parameters?: Record<string, unknown>; strict?: boolean | null };
}

/** The provider parameters a caller may set (`/v1/chat/completions` passes them on). */
export interface CompletionParams {
  temperature?: number;
  top_p?: number;
  max_tokens?: number;
  stop?: string | string[];
  presence_penalty?: number;
  frequency_penalty?: number;
  seed?: number;
  logit_bias?: Record<string, number>;
  response_format?: { type: 'text' } | { type: 'json_object' } | { type: 'json_schema'; json_schema: { name: string; description?: string; schema?: Record<string, unknown>; strict?: boolean | null } };
  tools?: FunctionTool[];
  tool_choice?: 'none' | 'auto' | 'required' | { type: 'function'; function: { name: string } };
  parallel_tool_calls?: boolean;
}

/**
 * The text of a request's parameters the model reads as prompt, as system messages: a JSON schema's and each
 * tool's definition (its function's name as the message's name, read as a speaker's is). As JSON (`json`, what
 * the provider counts: the context window, the quota, usage counted here) or as the words in it (`words`: every
 * key and string on a line of its own, escapes undone, for the blocked terms and moderation).
 */
export function parameterTexts(params: CompletionParams, as: 'json' | 'words' = 'json'): PromptMessage[] {
  const text = (value: unknown) => (as === 'json' ? JSON.stringify(value) : wordsOf(value).join('\n'));
  const texts: PromptMessage[] = [];
  if (params.response_format?.type === 'json_schema') texts.push({ role: 'system', content: text(params.response_format.json_schema) });
  for (const tool of params.tools ?? []) texts.push({ role: 'system', name: tool.function.name, content: text(tool.function) });
  return texts;
}

/** Every key and string of a JSON value (numbers too, as text), in order. */
function wordsOf(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (typeof value === 'number') return [String(value)];
  if (Array.isArray(value)) return value.flatMap(wordsOf);
  if (value && typeof value === 'object') return Object.entries(value).flatMap(([k, v]) => [k, ...wordsOf(v)]);
  return [];
}

/** A call's arguments as the words in them (JSON, as models write them), or as they are when they are not JSON. */
function argumentWords(args: string): string {
  try {
    return wordsOf(JSON.parse(args)).join('\n');
  } catch {
    return args;
  }
}

/** What one deployment is sent: the messages and parameters as it may see them. */
export interface PreparedRequest {
  messages: PromptMessage[];
  params: CompletionParams;
}

const refusedByModeration = () => new ProblemError(422, 'The message was refused by content moderation', { type: 'https://ally.eu/problems/content-blocked' });

/**
 * Runs before any provider sees a prompt: the organisation's blocked terms
 * (`checkRules`, before the request is accepted), then moderation
 * (`moderate`, before each deployment is called): by the deployment's own
 * prompt filter where it has one (Azure), otherwise by a moderation endpoint
 * the policy allows (a user restricted to the EU is never moderated outside
 * it). A refusal is a 422 and is logged without the prompt.
 */
@Injectable()
export class ContentFilterService {
  constructor(
    private readonly router: RouterService,
    private readonly clients: ProviderClients,
    @Inject(CHAT_CONFIG) private readonly config: ChatConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /**
   * Every message counts: on /v1/chat/completions the caller writes the whole history, system and assistant turns
   * included, and a speaker's name, which the model reads too (as written, and with its `_` and `-` read as the
   * spaces they may stand for).
   */
  checkRules(messages: PromptMessage[], policy: RoutingPolicy, userId: string): void {
    if (policy.blockedTerms.length === 0) return;
    if (blockedTermIn(promptTexts(messages, (name) => [name, name.replace(/[_-]+/g, ' ')]), policy.blockedTerms) !== undefined) {
      this.logger.warn({ userId, workspace: policy.workspace, rule: 'org-blocked-term' }, 'prompt refused by the content filter');
      throw new ProblemError(422, 'The message contains a term your organisation does not allow', { type: 'https://ally.eu/problems/content-blocked' });
    }
  }

  /** The moderation endpoint for a prompt bound to `target` (a deployment without a prompt filter of its own): one with the target's residency. */
  moderatorFor(policy: RoutingPolicy, target: Deployment): Deployment | undefined {
    return this.router.moderators(policy, target)[0];
  }

  /**
   * Asks `moderator` (from `moderatorFor`) about the whole prompt (with the text of its parameters); one outside
   * the EU sees what such a route sees: personal data redacted when configured.
   */
  async moderate(messages: PromptMessage[], params: CompletionParams, policy: RoutingPolicy, userId: string, moderator: Deployment, signal?: AbortSignal): Promise<void> {
    const seen = this.prepareFor(moderator, messages, this.config.REDACT_PII_OUTSIDE_EU, params);
    const input = promptTexts([...seen.messages, ...parameterTexts(seen.params, 'words')]).filter(Boolean);
    if (input.length === 0) return;
    const result = await this.clients
      .for(moderator)
      .moderations.create({ input }, { signal, timeout: this.config.MODERATION_TIMEOUT_MS })
      .catch((err) => {
        if (signal?.aborted) throw err;
        // Moderation is a safeguard, not a dependency: a failing endpoint does not block chat. One that refuses the
        // request itself (a wrong key, an input it does not take) is an operator's to mend: an error, not a warning.
        const refused = err instanceof OpenAI.APIError && err.status !== undefined && err.status >= 400 && err.status < 500 && err.status !== 408 && err.status !== 429;
        this.logger[refused ? 'error' : 'warn']({ err: providerErrorForLog(err), moderator: moderator.id }, refused ? 'moderation refused the request: prompts go unmoderated' : 'moderation unavailable');
        return null;
      });
    if (result?.results?.some((r) => r.flagged)) {
      this.logger.warn({ userId, workspace: policy.workspace, rule: 'moderation', moderator: moderator.id }, 'prompt refused by the content filter');
      throw refusedByModeration();
    }
  }

  /** The deployment's own prompt filter refused the prompt (Azure's 400 `content_filter`, with the categories it flagged). */
  refusedByDeployment(d: Deployment, policy: RoutingPolicy, userId: string, categories: string[]): ProblemError {
    this.logger.warn({ userId, workspace: policy.workspace, rule: 'provider-prompt-filter', deployment: d.id, categories }, 'prompt refused by the content filter');
    return refusedByModeration();
  }

  /**
   * What a deployment may see: outside the EU, with personal data redacted
   * when configured, in the messages and in the stop sequences (the request's
   * other text); a deployment configured as EU that lately reported a region
   * outside it counts as outside.
   */
  prepareFor(d: Deployment, messages: PromptMessage[], redactOutsideEu: boolean, params: CompletionParams = {}): PreparedRequest {
    messages = inRolesOf(d, messages);
    if (!redactOutsideEu || this.router.isEuResidentNow(d)) return { messages, params };
    // A participant's name is personal data no pattern finds: it stays in the EU. A tool's result is content like any
    // other; the arguments of the model's calls hold what it took from the prompt.
    const messagesSeen = messages.map(({ name: _name, ...m }) => ({
      ...m,
      content: redactPii(m.content),
      ...(m.tool_calls ? { tool_calls: m.tool_calls.map((c) => ({ ...c, function: { ...c.function, arguments: redactArguments(c.function.arguments) } })) } : {}),
    }));
    const seen: CompletionParams = { ...params };
    if (params.stop !== undefined) seen.stop = typeof params.stop === 'string' ? redactPii(params.stop) : params.stop.map((s) => redactPii(s));
    // A JSON schema's descriptions, enum values and defaults are text the model reads as well, and so are a tool's.
    if (params.response_format?.type === 'json_schema') seen.response_format = redactStrings(params.response_format);
    if (params.tools) {
      seen.tools = params.tools.map((t) => ({
        ...t,
        function: { ...t.function, ...(t.function.description !== undefined ? { description: redactPii(t.function.description) } : {}), ...(t.function.parameters ? { parameters: redactStrings(t.function.parameters) } : {}) },
      }));
    }
    return { messages: messagesSeen, params: seen };
  }

}

/** A call's arguments: JSON (as models write them) keeps its shape, its keys and values redacted; anything else is redacted as text. */
function redactArguments(args: string): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(args);
  } catch {
    return redactPii(args);
  }
  const redacted = JSON.stringify(redactStrings(parsed));
  // Unchanged, it goes as the model wrote it.
  return redacted === JSON.stringify(parsed) ? args : redacted;
}

/**
 * A JSON value with personal data redacted from its strings, its keys and its numbers (a card or phone number
 * written as one); a number that holds none stays a number.
 */
function redactStrings<T>(value: T): T {
  if (typeof value === 'string') return redactPii(value) as T;
  if (typeof value === 'number') {
    const redacted = redactPii(String(value));
    return (redacted === String(value) ? value : redacted) as T;
  }
  if (Array.isArray(value)) return value.map((v) => redactStrings(v)) as T;
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [redactPii(k), redactStrings(v)])) as T;
  return value;
}

/**
 * Only OpenAI itself takes the `developer` role from every model; Azure
 * before API version 2024-12-01-preview and the chat templates of self-hosted
 * models refuse it. For them it is what it stands for: the system message.
 */
function inRolesOf(d: Deployment, messages: PromptMessage[]): PromptMessage[] {
  if (d.provider === 'openai' || !messages.some((m) => m.role === 'developer')) return messages;
  return messages.map((m) => (m.role === 'developer' ? { ...m, role: 'system' } : m));
}

/** What the model reads of a prompt: each message's content, the speaker's name where one is given, and the calls of tools it made. */
function promptTexts(messages: PromptMessage[], name: (n: string) => string[] = (n) => [n]): string[] {
  return messages.flatMap((m) => [
    ...(m.name ? name(m.name) : []),
    m.content,
    ...(m.tool_calls?.flatMap((c) => [...name(c.function.name), argumentWords(c.function.arguments)]) ?? []),
  ]);
}
