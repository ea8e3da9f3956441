import { Inject, Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { isProblem, ProblemError, type Actor, type ChatCompletionsInput, type ResidencyReceipt } from '@ally/contracts';
import { LOGGER, NATS, toProblem } from '@ally/platform';
import { CHAT_CONFIG, type ChatConfig } from '../config.js';
import type { CompletionParams, FunctionTool, PromptMessage } from '../content-filter/content-filter.service.js';
import { AnswersInFlight, type AnswerStop } from './answers-in-flight.js';
import { CompletionService, type CompletionResult, type Plan, type StreamProgress } from './completion.service.js';
import { framesTo, listenForCancel, openFrameStream } from './frame-stream.js';

/** Settings the caller's request hands to the deployment as they are (null: the default, as OpenAI takes it). */
const PASSED_ON = [
  'temperature',
  'top_p',
  'stop',
  'presence_penalty',
  'frequency_penalty',
  'seed',
  'logit_bias',
  'response_format',
  'tool_choice',
  'parallel_tool_calls',
] as const satisfies readonly (keyof CompletionParams)[];

/**
 * Text parts joined by a line break (as vLLM does): glued, "Hello" and "World" reached the model, the filter and
 * redaction as "HelloWorld". None (an assistant turn that only called tools) is no text.
 */
const textOf = (content: ChatCompletionsInput['messages'][number]['content']): string =>
  content == null ? '' : typeof content === 'string' ? content : content.map((p) => p.text).join('\n');

/** A message of the caller's history as chat handles it: its text, and the tool calls and results it carries. */
const promptMessage = (m: ChatCompletionsInput['messages'][number]): PromptMessage => ({
  role: m.role,
  // A refusal the model gave is what it said in that turn.
  content: textOf(m.content) || (m.refusal ?? ''),
  ...(m.name ? { name: m.name } : {}),
  ...(m.tool_calls?.length ? { tool_calls: m.tool_calls } : {}),
  ...(m.tool_call_id != null ? { tool_call_id: m.tool_call_id } : {}),
});

/**
 * `POST /v1/chat/completions` for the official OpenAI SDK: same policy,
 * quota, filter and receipts as conversations, nothing stored but the usage
 * event (the caller keeps its own history).
 */
@Injectable()
export class CompatService {
  constructor(
    private readonly completions: CompletionService,
    private readonly inFlight: AnswersInFlight,
    @Inject(NATS) private readonly nats: NatsConnection,
    @Inject(CHAT_CONFIG) private readonly config: ChatConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /** `cancel`: as for a conversation's message, where the gateway says its client went away. */
  async complete(actor: Actor, workspace: string, request: ChatCompletionsInput, cancel?: string): Promise<{ completion: unknown; residency: ResidencyReceipt }> {
    // Listening from the start, as for a conversation's message: a cancel heard while the call is prepared stops it once prepared.
    const cancellation = listenForCancel(this.nats, this.config, cancel);
    let stop: AnswerStop | undefined;
    try {
      const started = await this.trackFromStart(actor, workspace, request);
      stop = started.stop;
      const plan = started.prepared;
      const result = await this.completions.complete(plan, cancellation ? AbortSignal.any([cancellation.signal, stop.signal]) : stop.signal);
      const id = randomUUID();
      await this.completions.recordUsage(id, plan, result);
      return {
        residency: result.residency,
        completion: {
          id: `chatcmpl-${id}`,
          object: 'chat.completion',
          created: Math.floor(Date.now() / 1000),
          model: plan.model,
          choices: [{ index: 0, message: answerMessage(result), finish_reason: result.finishReason ?? 'stop', logprobs: null }],
          usage: { prompt_tokens: result.usage.promptTokens, completion_tokens: result.usage.completionTokens, total_tokens: result.usage.promptTokens + result.usage.completionTokens },
        },
      };
    } finally {
      cancellation?.close();
      stop?.release();
    }
  }

  async stream(actor: Actor, workspace: string, request: ChatCompletionsInput, target: { subject: string; window: number }): Promise<{ accepted: true }> {
    const { prepared: plan, stop: tracked } = await this.trackFromStart(actor, workspace, request);
    const publisher = openFrameStream(this.nats, this.config, target);
    void (async () => {
      const progress: StreamProgress = { text: '' };
      const id = randomUUID();
      let result: CompletionResult | undefined;
      try {
        result = await this.completions.stream(plan, framesTo(publisher, id), AbortSignal.any([publisher.abort.signal, tracked.signal]), progress);
        await this.completions.recordUsage(id, plan, result);
        publisher.finish({ type: 'done', messageId: id, model: plan.model, usage: result.usage, residency: result.residency, finishReason: result.finishReason });
      } catch (err) {
        // The whole answer went out but its usage could not be recorded (after recordUsage's own tries): billed once, not as a broken-off part too.
        if (result) {
          this.logger.error({ err: String(err) }, 'recording the usage of a streamed answer failed');
          return publisher.finish({ type: 'error', problem: toProblem(err, this.logger) });
        }
        // An answer that broke off is billed for what was generated, as in a conversation, under the id its client saw.
        const partial = this.completions.partial(plan, progress);
        if (partial) {
          await this.completions.recordUsage(id, plan, partial).catch((e) => this.logger.error({ err: String(e) }, 'recording the usage of a broken-off answer failed'));
        }
        if (publisher.cancelled) return publisher.close();
        publisher.finish({ type: 'error', problem: isProblem(err) ? err : err instanceof ProblemError ? err.toProblem() : toProblem(err, this.logger) });
      } finally {
        tracked.release();
      }
    })();
    return { accepted: true };
  }

  /** Nothing is stored for these calls, but an erasure of the caller, or this replica stopping, stops their processing all the same. */
  private trackFromStart(actor: Actor, workspace: string, request: ChatCompletionsInput) {
    return this.inFlight.trackFromStart(
      { userId: actor.userId },
      () => this.plan(actor, workspace, request),
      (plan) => plan.policy.workspace,
      (plan) => this.completions.releaseQuota(plan),
    );
  }

  private plan(actor: Actor, workspace: string, request: ChatCompletionsInput): Promise<Plan> {
    const messages = request.messages.map(promptMessage);
    const params: CompletionParams = {};
    for (const name of PASSED_ON) if (request[name] != null) Object.assign(params, { [name]: request[name] });
    // An empty list offers nothing (OpenAI refuses it; clients that build the list send it so), nor anything to choose.
    if (request.tools?.length) params.tools = request.tools.map(functionTool);
    else {
      delete params.tool_choice;
      delete params.parallel_tool_calls;
    }
    const maxTokensField = request.max_completion_tokens != null ? 'max_completion_tokens' : 'max_tokens';
    const maxTokens = request[maxTokensField];
    if (maxTokens != null) params.max_tokens = maxTokens;
    return this.completions.prepare(actor, workspace, request.model, messages, params, undefined, { fit: 'refuse', maxTokensField });
  }
}

/** A tool as the deployment takes it: fields sent as null ("none") are left out. */
function functionTool(tool: NonNullable<ChatCompletionsInput['tools']>[number]): FunctionTool {
  const { name, description, parameters, strict } = tool.function;
  return { type: 'function', function: { name, ...(description != null ? { description } : {}), ...(parameters != null ? { parameters } : {}), ...(strict != null ? { strict } : {}) } };
}

/** The whole answer as OpenAI's message: no content (null) when the model only called tools. */
function answerMessage(result: CompletionResult) {
  const calls = result.toolCalls?.length ? result.toolCalls : undefined;
  return { role: 'assistant', content: calls && !result.text ? null : result.text, refusal: null, ...(calls ? { tool_calls: calls } : {}) };
}
