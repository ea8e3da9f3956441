import { Inject, Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { type Actor, ANSWER_BROKE_OFF, ERASED_USER, ProblemError, type ResidencyReceipt, type ToolCall, type Usage } from '@ally/contracts';
import { Outbox } from '@ally/messaging';
import { ChatEvents } from '@ally/contracts';
import { lockSubject } from '@ally/persistence';
import { LOGGER, waitFromHeader } from '@ally/platform';
import type { Deployment } from '../catalog/model-catalog.js';
import { RouterService } from '../catalog/router.service.js';
import { CHAT_CONFIG, type ChatConfig } from '../config.js';
import OpenAI from 'openai';
import type { ChatCompletionMessageParam } from 'openai/resources/chat/completions';
import { ContentFilterService, parameterTexts, type CompletionParams, type PreparedRequest, type PromptMessage } from '../content-filter/content-filter.service.js';
import { ContentCipher } from '../crypto/content-cipher.service.js';
import { PolicyService, type RoutingPolicy } from '../policy/policy.service.js';
import { QuotaGate, type QuotaReservation } from '../quota/quota.gate.js';
import { servedInEu } from '../catalog/eu-regions.js';
import { filteredCategories, isAbort, isFallbackWorthy, isPromptFiltered, ProviderClients, ProviderStreamError, ServedOutsideEu } from './provider-clients.js';
import { openAiFinishReason } from './finish-reason.js';
import { completionChunks } from './provider-stream.js';
import { answered, toolCallPiece, toolCallsOf, type ToolCallPiece } from './tool-calls.js';
import { promptBytes, promptTokens, textTokens } from './token-count.js';
import { providerErrorForLog } from './provider-error-log.js';
import { OutsideEuQuarantine } from '../catalog/outside-eu-quarantine.js';

/** A request that passed policy, quota and the content filter: ready to send. */
export interface Plan {
  actor: Actor;
  policy: RoutingPolicy;
  model: string;
  candidates: Deployment[];
  messages: PromptMessage[];
  params: CompletionParams;
  /** What the quota gate reserved for the prompt; the answer's usage takes its place (`spent`), or `releaseQuota` frees it. */
  quota: QuotaReservation;
}

/** How far a streamed answer got: the deployment that took it and the text sent so far (what to keep and bill if it breaks off). */
export interface StreamProgress {
  deployment?: Deployment;
  /** The receipt of the deployment that took the answer, with the region it reported. */
  residency?: ResidencyReceipt;
  text: string;
  /** The calls of the caller's tools so far, by their index in the answer (`/v1/chat/completions`). */
  toolCalls?: ToolCall[];
}

/** What a streamed answer is handed to as it comes. */
export interface AnswerSink {
  start?: (residency: ResidencyReceipt) => Promise<void>;
  delta: (text: string) => Promise<void>;
  toolCall?: (piece: ToolCallPiece) => Promise<void>;
}

export interface CompletionResult {
  text: string;
  /** The model called the caller's tools (`/v1/chat/completions`). */
  toolCalls?: ToolCall[];
  usage: Usage;
  residency: ResidencyReceipt;
  deployment: Deployment;
  /** Why the provider ended the answer (`stop`, `length`, `content_filter`…); none for one that broke off. */
  finishReason?: string;
}

/** A deployment that got the prompt and answered from outside the EU, its answer dropped. */
type Stray = NonNullable<ResidencyReceipt['alsoSentTo']>[number];

/** Room kept for the answer when trimming history to the context window. */
const ANSWER_RESERVE = 1024;
/** Tries at recording an answer's usage, the pause before the second doubling each time (0.5 + 1 + 2 + 4 s in all). */
const USAGE_ATTEMPTS = 5;
const USAGE_RETRY_MS = 500;

@Injectable()
export class CompletionService {
  readonly outbox = new Outbox('chat', ChatEvents);

  constructor(
    private readonly ds: DataSource,
    private readonly policies: PolicyService,
    private readonly router: RouterService,
    private readonly quarantine: OutsideEuQuarantine,
    private readonly filter: ContentFilterService,
    private readonly quota: QuotaGate,
    private readonly clients: ProviderClients,
    private readonly cipher: ContentCipher,
    @Inject(CHAT_CONFIG) private readonly config: ChatConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /**
   * `policy`: when the caller already resolved it (read along with its own rows).
   * `fit`: a conversation's history is trimmed to the context window (Ally keeps
   * it); a caller who sends its own history gets a refusal, as from OpenAI.
   * `maxTokensField`: the request field `params.max_tokens` came from, named when it does not fit.
   */
  async prepare(
    actor: Actor,
    workspace: string,
    model: string | undefined,
    messages: PromptMessage[],
    params: CompletionParams = {},
    policy?: RoutingPolicy,
    { fit = 'trim', maxTokensField = 'max_tokens' }: { fit?: 'trim' | 'refuse'; maxTokensField?: string } = {},
  ): Promise<Plan> {
    policy ??= await this.policies.resolve(actor, workspace);
    const chosen = model ?? this.router.defaultModel(policy, this.config.DEFAULT_MODEL);
    const candidates = this.router.candidates(chosen, policy);
    const context = Math.min(...candidates.map((c) => c.contextWindow));
    if (params.max_tokens !== undefined && params.max_tokens >= context) {
      throw new ProblemError(400, `${maxTokensField} leaves no room for the prompt in ${chosen}'s context window of ${context} tokens`, {
        errors: [{ field: maxTokensField, message: `must be below ${context}, the context window of ${chosen}` }],
      });
    }
    const window = context - (params.max_tokens ?? ANSWER_RESERVE);
    // A JSON schema's text and the tools' definitions are read by the model too, and take their room in its window.
    const definitions = parameterTexts(params);
    const definitionTokens = definitions.length ? promptTokens(definitions) : 0;
    const sent = fit === 'trim' ? trimToWindow(messages, window - definitionTokens) : assertFits(messages, window, chosen, context, definitionTokens);
    // What the model will see: a term in history trimmed away reaches no provider.
    this.filter.checkRules([...sent, ...parameterTexts(params, 'words')], policy, actor.userId);
    const quota = await this.quota.assertAllowed(policy.workspace, actor.userId, [...sent, ...definitions]);
    return { actor, policy, model: chosen, candidates, messages: sent, params, quota };
  }

  /**
   * The whole answer at once, for a caller that does not stream: taken from the provider as a stream all the same,
   * so an answer stopped halfway (its client left, the replica stops, the provider broke off) is billed for the text
   * generated so far, as a streamed one is; its client read none of it, so nothing else is kept. Its client hears
   * nothing before the end, so another deployment may still serve it after one accepted the call, as long as that
   * one sent no text (an error in its stream, a connection lost before the first token).
   */
  async complete(plan: Plan, signal?: AbortSignal): Promise<CompletionResult> {
    const progress: StreamProgress = { text: '' };
    try {
      return await this.answer(plan, { delta: async () => undefined }, signal, progress, () => !progress.text && !progress.toolCalls);
    } catch (err) {
      await this.billUnread(plan, progress);
      throw err;
    }
  }

  /**
   * Streaming. Fallback is possible only until a provider accepted the call:
   * after that the user may see part of one answer, and a second would be wrong.
   */
  stream(
    plan: Plan,
    on: AnswerSink,
    signal?: AbortSignal,
    progress: StreamProgress = { text: '' },
  ): Promise<CompletionResult> {
    return this.answer(plan, on, signal, progress);
  }

  /** `afterStart`: whether another deployment may still serve the call once one accepted it (for a whole answer). */
  private answer(
    plan: Plan,
    on: AnswerSink,
    signal: AbortSignal | undefined,
    progress: StreamProgress,
    afterStart: () => boolean = () => false,
  ): Promise<CompletionResult> {
    let started = false;
    return this.withFallback(
      plan,
      async (d, client, { messages, params }, strays) => {
        progress.deployment = d;
        const response = await client.chat.completions
          .create(
            { model: d.deployment ?? d.model, messages: onTheWire(messages), store: false, stream: true, stream_options: { include_usage: true }, ...params },
            { signal },
          )
          .asResponse();
        const residency = this.receipt(d, plan.policy, response.headers, strays);
        try {
          this.assertResidency(plan, d, residency);
        } catch (err) {
          // Nothing of this answer reached the user: let it go, and try the next deployment.
          await response.body?.cancel().catch(() => undefined);
          throw err;
        }
        // The provider accepted: from here this deployment is the answer, and the receipt is final.
        started = true;
        progress.residency = residency;
        await on.start?.(residency);
        let usage: { prompt_tokens: number; completion_tokens: number } | undefined;
        let finishReason: string | undefined;
        try {
          for await (const chunk of completionChunks(response, signal)) {
            // An OpenAI-compatible endpoint may send a chunk without choices (usage only, a keep-alive).
            const delta = chunk.choices?.[0]?.delta;
            if (delta?.content) {
              progress.text += delta.content;
              await on.delta(delta.content);
            }
            if (delta?.tool_calls) for (const piece of delta.tool_calls) await toolCallPiece(piece, progress, on);
            // In OpenAI's words, whatever server answered (an OpenAI-compatible one may say `eos_token`).
            finishReason = openAiFinishReason(chunk.choices?.[0]?.finish_reason) ?? finishReason;
            if (chunk.usage) usage = chunk.usage;
          }
          // A stream cut off by our abort may end quietly: a cut-off answer is not a complete one.
          if (signal?.aborted) throw signal.reason;
          // Nor is one the server says it broke off.
          if (finishReason === 'error') throw new Error(`${d.id} ended the answer with finish_reason "error"`);
        } catch (err) {
          // It had the prompt, and said where it served it: outside the EU, the answer a fallback gives names it.
          if (!this.servedInEuNow(d, residency.reportedRegion)) strays.push({ deployment: d.id, region: d.region, reportedRegion: residency.reportedRegion ?? d.region });
          throw err;
        }
        return { text: progress.text, ...toolCallsOf(progress), usage: usageOf(usage, { messages, params }, progress), residency, finishReason };
      },
      () => !started || afterStart(),
      signal,
    );
  }

  /**
   * An answer that broke off (the client left, or the provider stopped) after
   * some text reached the user, billed by our own token count since the
   * provider's usage never came; none when nothing was sent.
   */
  partial(plan: Plan, progress: StreamProgress): CompletionResult | undefined {
    const { deployment, residency, text } = progress;
    if (!deployment || (!text && !progress.toolCalls)) return undefined;
    return { text, ...toolCallsOf(progress), deployment, usage: usageOf(undefined, plan, progress), residency: residency ?? this.receipt(deployment, plan.policy) };
  }

  /**
   * An answer that stopped before its client read any of it (a non-streamed one always; a streamed one whose client
   * was told the call failed): nothing to keep, but the tokens the provider generated are billed.
   */
  async billUnread(plan: Plan, progress: StreamProgress): Promise<void> {
    const partial = this.partial(plan, progress);
    if (!partial) return;
    await this.recordUsage(randomUUID(), plan, partial).catch((e) => this.logger.error({ err: String(e) }, 'billing an unread answer failed'));
  }

  /**
   * Writes the usage event alone, in a transaction of its own (billing's
   * ledger input), for an answer no turn is saved with. An erasure of the
   * subject that committed meanwhile has already cleared the outbox of them,
   * so then the event names nobody: the organisation's books keep the amount,
   * not the person.
   */
  async recordUsage(messageId: string, plan: Plan, result: CompletionResult): Promise<void> {
    this.spent(plan, result);
    // The provider spent the tokens whatever our database says: asked again through a failover or a lost connection
    // (billing counts one message id once, also when a try that seemed to fail had committed).
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.ds.transaction(async (em) => {
          await lockSubject(em, plan.actor.userId, 'shared');
          const erased = await this.cipher.isErased(em, plan.actor.userId);
          await this.outbox.append(em, 'chat.completion.recorded', ...this.usageEvent(messageId, plan, result, erased ? ERASED_USER : plan.actor.userId));
        });
      } catch (err) {
        if (attempt >= USAGE_ATTEMPTS) throw err;
        await sleep(USAGE_RETRY_MS * 2 ** (attempt - 1));
      }
    }
  }

  /** An answer's tokens, off the quota this replica has cached until billing counts them. */
  spent(plan: Plan, result: CompletionResult): void {
    this.quota.spent(plan.quota, result.usage.promptTokens + result.usage.completionTokens);
  }

  /** A turn that ends without usage to record frees what its prompt reserved (a no-op once its usage was). */
  releaseQuota(plan: Plan): void {
    this.quota.release(plan.quota);
  }

  /** The usage event as outbox row values, for a caller that writes it in its own statement. */
  usageRow(messageId: string, plan: Plan, result: CompletionResult): [string, string, string, string] {
    return this.outbox.row('chat.completion.recorded', ...this.usageEvent(messageId, plan, result)).values;
  }

  /** `userId`: whom the usage names (nobody, once the subject was erased). */
  private usageEvent(messageId: string, plan: Plan, result: CompletionResult, userId = plan.actor.userId) {
    return [
      {
        messageId,
        workspace: plan.policy.workspace,
        userId,
        model: plan.model,
        deployment: result.deployment.id,
        region: result.deployment.region,
        // What the receipt says happened (a deployment may have reported a region outside the EU).
        euResident: result.residency.euResident,
        promptTokens: result.usage.promptTokens,
        completionTokens: result.usage.completionTokens,
        cost:
          (result.usage.promptTokens / 1000) * result.deployment.pricePer1kTokens.prompt +
          (result.usage.completionTokens / 1000) * result.deployment.pricePer1kTokens.completion,
      },
      { subject: { userId, ...(plan.policy.workspace !== 'private' ? { orgId: plan.policy.workspace } : {}) } },
    ] as const;
  }

  private async withFallback(
    plan: Plan,
    call: (d: Deployment, client: ReturnType<ProviderClients['for']>, request: PreparedRequest, strays: Stray[]) => Promise<Omit<CompletionResult, 'deployment'>>,
    mayFallBack: () => boolean = () => true,
    signal?: AbortSignal,
  ): Promise<CompletionResult> {
    let lastError: unknown;
    /** The soonest a rate-limited deployment said to come back (seconds), for the caller's Retry-After. */
    let retryAfter: number | undefined;
    const moderations = new Map<string, Promise<void>>();
    const strays: Stray[] = [];
    for (const [attempt, d] of plan.candidates.entries()) {
      let sent = false;
      try {
        // A fallback, and any deployment outside the EU, follows the policy of now: EU-only may have been switched
        // on since the request was accepted (while the quota was asked, or moderation or an earlier deployment
        // took their time). Asked before the prompt goes to its moderator, and again right before it goes out.
        const allowedNow = async (meanwhile: string, waited: boolean) => {
          // The first deployment, in the EU (not quarantined meanwhile: it reported a region outside the EU to another
          // request), goes by the policy the request was accepted under, unless moderation made it wait (up to
          // MODERATION_TIMEOUT_MS: a restriction, a removal or a tightened list may have come meanwhile).
          if (attempt === 0 && !waited && this.router.isEuResidentNow(d)) return true;
          if (await this.stillAllowed(plan, d)) return true;
          this.logger.info({ deployment: d.id }, `the policy tightened while ${meanwhile}; not sending to this deployment`);
          return false;
        };
        if (!(await allowedNow('the request was served', false))) continue;
        // A deployment without a prompt filter of its own sees only a prompt moderated by an endpoint of its residency (each asked once per request).
        const moderator = d.promptFilter ? undefined : this.filter.moderatorFor(plan.policy, d);
        if (moderator) {
          if (!moderations.has(moderator.id)) {
            moderations.set(moderator.id, this.filter.moderate(plan.messages, plan.params, plan.policy, plan.actor.userId, moderator, signal));
            // A moderator outside the EU has seen the (redacted) prompt, whatever deployment answers in the end.
            if (moderator.id !== d.id && !this.router.isEuResidentNow(moderator)) strays.push({ deployment: moderator.id, region: moderator.region, reportedRegion: moderator.region });
          }
          await moderations.get(moderator.id);
          if (!(await allowedNow('the prompt was moderated', true))) continue;
        }
        // The route decides what leaves the EU: a deployment outside it (also one quarantined while moderation ran)
        // sees redacted personal data.
        const request = this.filter.prepareFor(d, plan.messages, this.config.REDACT_PII_OUTSIDE_EU, plan.params);
        sent = true;
        return { ...(await call(d, this.clients.for(d), request, strays)), deployment: d };
      } catch (err) {
        // Named already (by the call, once the deployment had accepted it): once is enough.
        if (!strays.some((s) => s.deployment === d.id)) this.noteStray(d, err, sent, strays);
        // Stopped on purpose (the conversation or its owner went: a 410), or the client went away.
        if (isAbort(err)) throw signal?.reason instanceof ProblemError ? signal.reason : new ProblemError(499, 'The client went away; the provider call was cancelled');
        if (err instanceof ProblemError) throw err;
        if (isPromptFiltered(err)) throw this.filter.refusedByDeployment(d, plan.policy, plan.actor.userId, filteredCategories(err));
        lastError = err;
        const wait = retryAfterOf(err);
        if (wait !== undefined) retryAfter = Math.min(retryAfter ?? wait, wait);
        if (!isFallbackWorthy(err) || !mayFallBack()) break;
        this.logger.warn({ deployment: d.id, err: providerErrorForLog(err) }, 'deployment failed; falling back to the next allowed one');
      }
    }
    // Every one was passed over because the policy tightened meanwhile, or the last one tried reported serving from
    // outside the EU (kept from EU-only callers from now on): the 422 saying why when nothing is left, not a 503
    // whose retry would get it.
    if (lastError === undefined || lastError instanceof ServedOutsideEu) this.router.candidates(plan.model, plan.policy);
    this.logger.error({ model: plan.model, err: providerErrorForLog(lastError) }, 'no deployment could serve the request');
    throw failureProblem(lastError, plan.model, !mayFallBack(), retryAfter);
  }

  /** Where a failed attempt's prompt went, if outside the EU: the answer that follows names it. */
  private noteStray(d: Deployment, err: unknown, sent: boolean, strays: Stray[]): void {
    if (err instanceof ServedOutsideEu) strays.push({ deployment: d.id, region: d.region, reportedRegion: err.reportedRegion });
    else if (sent && !this.router.isEuResidentNow(d) && reachedProvider(err)) {
      // It failed, but outside the EU and after the prompt got there.
      strays.push({ deployment: d.id, region: d.region, reportedRegion: (err instanceof OpenAI.APIError ? err.headers?.get('x-ms-region') : null) ?? d.region });
    } else {
      // A refusal (an error, a prompt filter's) came from where the prompt went: one from outside the EU counts as an answer from there.
      const reportedRegion = err instanceof OpenAI.APIError ? (err.headers?.get('x-ms-region') ?? null) : null;
      if (this.strayedOutsideEu(d, reportedRegion)) strays.push({ deployment: d.id, region: d.region, reportedRegion: reportedRegion! });
    }
  }

  /**
   * Whether sending to `d` is still allowed: the caller's policy may have
   * tightened since the request was accepted (EU-only switched on while the
   * first deployment hung), and what follows goes by the policy of now, which
   * from here on is also the one the receipt names. Also refused (a problem)
   * once the account is erased or its processing restricted meanwhile.
   */
  private async stillAllowed(plan: Plan, d: Deployment): Promise<boolean> {
    const current = await this.policies.resolve(plan.actor, plan.policy.workspace);
    plan.policy = current;
    return this.router.allowed(current).some((a) => a.id === d.id);
  }

  /** A caller restricted to the EU never gets an answer the provider says it produced elsewhere (what earlier deployments did is the receipt's business). */
  private assertResidency(plan: Plan, d: Deployment, residency: ResidencyReceipt): void {
    if (plan.policy.euOnly && !this.servedInEuNow(d, residency.reportedRegion)) throw new ServedOutsideEu(residency.deployment, residency.reportedRegion ?? residency.region);
  }

  /**
   * `servedInEu`, and a deployment quarantined now (it reported a region outside the EU lately) counts as EU only
   * when this answer names an EU region: one that names none proves nothing.
   */
  private servedInEuNow(d: Deployment, reportedRegion: string | null): boolean {
    return servedInEu(d, reportedRegion) && (reportedRegion !== null || this.router.isEuResidentNow(d));
  }

  /**
   * Whether a deployment configured as EU-resident reported a region outside the EU (in an answer or an error);
   * it is then kept from EU-only callers until OutsideEuQuarantine's probe finds it in the EU again.
   */
  private strayedOutsideEu(d: Deployment, reportedRegion: string | null): boolean {
    if (!d.euResident || servedInEu(d, reportedRegion)) return false;
    this.quarantine.announce(d.id, reportedRegion!);
    this.logger.error({ deployment: d.id, reportedRegion }, 'a deployment configured as EU-resident reported a region outside the EU; kept from EU-only callers until a probe finds it in the EU again; check the catalog and the Azure resource');
    return true;
  }

  /** What happened, not what the catalog promised: a deployment that reports a region outside the EU is not EU-resident. */
  receipt(d: Deployment, policy: RoutingPolicy, headers?: Headers, strays: Stray[] = []): ResidencyReceipt {
    const reportedRegion = headers?.get('x-ms-region') ?? null;
    const inEu = this.servedInEuNow(d, reportedRegion);
    this.strayedOutsideEu(d, reportedRegion);
    return {
      provider: d.provider,
      deployment: d.id,
      deploymentType: d.deploymentType,
      region: d.region,
      reportedRegion,
      euResident: inEu && strays.length === 0,
      ...(strays.length ? { alsoSentTo: [...strays] } : {}),
      policy: { restrictToEu: policy.restrictToEu, orgEuOnly: policy.orgEuOnly, allowedModels: policy.allowedModels, workspace: policy.workspace },
      at: new Date().toISOString(),
    };
  }
}

/** What the caller hears when no deployment answered; the provider's own words stay in the log. */
function failureProblem(err: unknown, model: string, started: boolean, retryAfter?: number): ProblemError {
  if (started) {
    // Part of the answer is out: another deployment cannot continue it.
    return err instanceof OpenAI.APIConnectionTimeoutError
      ? new ProblemError(504, 'The model provider stopped sending the answer; please try again', { type: ANSWER_BROKE_OFF })
      : new ProblemError(502, 'The model provider broke off the answer; please try again', { type: ANSWER_BROKE_OFF });
  }
  if (isFallbackWorthy(err)) return new ProblemError(503, `No allowed deployment of "${model}" is answering right now; try again shortly`, retryAfter ? { retryAfter } : {});
  if (err instanceof OpenAI.APIError && (err.status === 400 || err.status === 422)) {
    return new ProblemError(422, 'The model refused the request as invalid (for example max_tokens above what it allows)', { type: 'https://ally.eu/problems/model-refused-request' });
  }
  return new ProblemError(502, 'The model provider refused the request');
}

/** A provider's `Retry-After` on a refusal, in whole seconds (at most an hour): for the caller's own Retry-After. */
function retryAfterOf(err: unknown): number | undefined {
  const ms = waitFromHeader(err instanceof OpenAI.APIError ? err.headers?.get('retry-after') : null);
  return ms ? Math.min(Math.ceil(ms / 1000), 3600) : undefined;
}

/**
 * As OpenAI takes them: an assistant turn that only called tools has no content (null), not an empty one. The
 * shapes are OpenAI's already (a tool message has its call's id: the request's schema sees to it).
 */
function onTheWire(messages: PromptMessage[]): ChatCompletionMessageParam[] {
  return messages.map((m) => (m.tool_calls?.length && !m.content ? { ...m, content: null } : m)) as ChatCompletionMessageParam[];
}

/** `prompt`: what was sent, its parameters' text (tools, a JSON schema) included; counted only when the provider reported no usage. */
function usageOf(usage: { prompt_tokens: number; completion_tokens: number } | undefined | null, prompt: PreparedRequest, progress: StreamProgress): Usage {
  // Providers report usage; counting ourselves is the fallback for endpoints that do not.
  return usage
    ? { promptTokens: usage.prompt_tokens, completionTokens: usage.completion_tokens }
    : { promptTokens: promptTokens([...prompt.messages, ...parameterTexts(prompt.params)]), completionTokens: textTokens(answered(progress)) };
}

/**
 * Keeps system messages and the newest turns that fit the model's context
 * window, in their order, starting with a question: an answer whose question
 * did not fit goes too (the model would read it as said unprompted, and strict
 * chat templates refuse an assistant turn first).
 */
export function trimToWindow(messages: PromptMessage[], maxTokens: number): PromptMessage[] {
  if (promptBytes(messages) <= maxTokens) return messages;
  const isSystem = (m: PromptMessage) => m.role === 'system' || m.role === 'developer';
  let budget = maxTokens - promptTokens(messages.filter(isSystem));
  const kept = new Set<PromptMessage>();
  for (let i = messages.length - 1; i >= 0 && budget >= 0; i--) {
    if (isSystem(messages[i])) continue;
    const cost = promptTokens([messages[i]]);
    if (cost > budget) break;
    budget -= cost;
    kept.add(messages[i]);
  }
  const newest = messages.findLast((m) => !isSystem(m));
  if (budget < 0 || (newest && !kept.has(newest))) {
    // Bad input for this model (a 400, as OpenAI answers it), not a body too large for the API (413 is that).
    throw new ProblemError(400, 'The message is longer than the model can read', {
      type: 'https://ally.eu/problems/context-length-exceeded',
      errors: [{ field: 'content', message: 'exceeds the model context window' }],
    });
  }
  for (const m of messages) {
    if (!kept.has(m)) continue;
    if (m.role === 'user' || m === newest) break;
    kept.delete(m);
  }
  return messages.filter((m) => isSystem(m) || kept.has(m));
}

/**
 * The caller's prompt as it is, or a 400 naming what to shorten when it does not fit beside the answer's room
 * (`definitions`: the tokens a JSON schema and the tools' definitions take of it).
 */
function assertFits(messages: PromptMessage[], maxTokens: number, model: string, context: number, definitions = 0): PromptMessage[] {
  const room = maxTokens - definitions;
  if (promptBytes(messages) <= room) return messages;
  const needed = promptTokens(messages);
  if (needed <= room) return messages;
  const tools = definitions ? `, the tools and response format about ${definitions}` : '';
  // What to shorten: the definitions when they alone leave no room, else the messages.
  const [field, message] =
    definitions >= maxTokens
      ? ['tools', `about ${definitions} tokens with the response format, more than the ${maxTokens} left for the prompt in ${model}'s context window`]
      : ['messages', `about ${needed} tokens, more than the ${room} left for them in ${model}'s context window`];
  throw new ProblemError(400, `This model's context window is ${context} tokens; the messages need about ${needed}${tools} and the answer ${context - maxTokens} (max_tokens or the default room)`, {
    type: 'https://ally.eu/problems/context-length-exceeded',
    errors: [{ field, message }],
  });
}

/** An error that came from the provider (it answered, or let the call time out): the prompt had reached it. */
function reachedProvider(err: unknown): boolean {
  return err instanceof OpenAI.APIConnectionTimeoutError || err instanceof ProviderStreamError || (err instanceof OpenAI.APIError && err.status !== undefined);
}
