import { z } from 'zod';
import type { Problem } from '../common/problem.js';
import { replyTime } from '../common/replies.js';

/** What actually served a completion (not what the policy allowed). */
export const residencyReceipt = z.strictObject({
  provider: z.enum(['openai', 'azure', 'openai-compatible']),
  deployment: z.string(),
  deploymentType: z.string(),
  region: z.string(),
  reportedRegion: z.string().nullable().describe("the region the provider itself reported (Azure's x-ms-region), when it reports one"),
  euResident: z.boolean().describe('whether everything this answer took stayed in the EU: false also when `alsoSentTo` names a deployment outside it'),
  alsoSentTo: z
    .array(z.strictObject({ deployment: z.string(), region: z.string(), reportedRegion: z.string() }))
    .optional()
    .describe(
      'where else the prompt went outside the EU before this answer: a deployment configured as EU that reported another region (its answer was not used), ' +
        'a deployment outside the EU that failed after the prompt reached it, a moderation endpoint outside the EU; absent when none',
    ),
  policy: z.strictObject({ restrictToEu: z.boolean(), orgEuOnly: z.boolean(), allowedModels: z.array(z.string()).nullable(), workspace: z.string() }),
  at: replyTime,
});
export type ResidencyReceipt = z.infer<typeof residencyReceipt>;

export const tokenUsageReply = z.strictObject({ promptTokens: z.number().int(), completionTokens: z.number().int() });
export type Usage = z.infer<typeof tokenUsageReply>;

export const chatMessageReply = z.strictObject({
  id: z.string(),
  role: z.enum(['user', 'assistant']),
  content: z.string(),
  createdAt: replyTime,
  model: z.string().optional(),
  usage: tokenUsageReply.optional(),
  residency: residencyReceipt.optional(),
  status: z.enum(['complete', 'aborted']).optional().describe('`aborted`: the answer broke off (client gone, provider stopped); what was written is kept and billed'),
});
export type ChatMessage = z.infer<typeof chatMessageReply>;

export const conversationReply = z.strictObject({
  id: z.string(),
  workspace: z.string(),
  title: z.string().nullable(),
  assistantId: z.string().nullable(),
  createdAt: replyTime,
  updatedAt: replyTime,
});
export type Conversation = z.infer<typeof conversationReply>;

export const conversationWithMessagesReply = conversationReply.extend({
  messages: z.array(chatMessageReply).describe('oldest first: the newest page of the conversation, or the one before `cursor`'),
  nextCursor: z.string().nullable().describe('where the older messages continue (`?cursor=`); null once the page reaches the first message'),
});
export type ConversationWithMessages = z.infer<typeof conversationWithMessagesReply>;

export const assistantReply = z.strictObject({
  id: z.string(),
  workspace: z.string(),
  name: z.string(),
  instructions: z.string(),
  model: z.string().nullable(),
  createdAt: replyTime,
});
export type Assistant = z.infer<typeof assistantReply>;

/**
 * The problem type of an answer the provider broke off after it had sent text (a 502 or 504): that text was
 * generated and billed, so a client is told not to send the request again on its own (`x-should-retry: false`).
 */
export const ANSWER_BROKE_OFF = 'https://ally.eu/problems/answer-broke-off';

/** The problem type of a model the catalog does not have, or the caller's policy hides (OpenAI's code `model_not_found`). */
export const MODEL_NOT_FOUND = 'https://ally.eu/problems/model-not-found';

export const modelReply = z.strictObject({
  id: z.string(),
  object: z.literal('model'),
  created: z.number().int(),
  owned_by: z.string(),
  region: z.string(),
  euResident: z.boolean(),
});
export const modelListReply = z.strictObject({ object: z.literal('list'), data: z.array(modelReply) });
export type ModelList = z.infer<typeof modelListReply>;

/** A call of one of the caller's tools, as OpenAI names it. */
export const toolCallReply = z.strictObject({ id: z.string(), type: z.literal('function'), function: z.strictObject({ name: z.string(), arguments: z.string() }) });
export type ToolCall = z.infer<typeof toolCallReply>;

/** The OpenAI-compatible answer of `POST /v1/chat/completions` without `stream` (OpenAI's `chat.completion` object). */
export const chatCompletionReply = z.strictObject({
  id: z.string(),
  object: z.literal('chat.completion'),
  created: z.number().int(),
  model: z.string(),
  choices: z.array(
    z.strictObject({
      index: z.number().int(),
      /** `content` is null when the model only called tools. */
      message: z.strictObject({
        role: z.literal('assistant'),
        content: z.string().nullable(),
        refusal: z.null(),
        tool_calls: z.array(toolCallReply).optional(),
      }),
      finish_reason: z.string(),
      logprobs: z.null(),
    }),
  ),
  usage: z.strictObject({ prompt_tokens: z.number().int(), completion_tokens: z.number().int(), total_tokens: z.number().int() }),
});
export type ChatCompletion = z.infer<typeof chatCompletionReply>;

/** One frame of a completion streamed from chat to the gateway over NATS. */
export type StreamFrame =
  /** The provider accepted the call: this receipt is final (no fallback after it). */
  /** `messageId`: where the answer's id is known from the start (`/v1/chat/completions`), the one its usage is recorded under. */
  | { seq: number; type: 'start'; residency: ResidencyReceipt; messageId?: string }
  | { seq: number; type: 'delta'; text: string }
  /** A piece of a call of the caller's tools (`/v1/chat/completions`): its id and name come with its first piece. */
  | { seq: number; type: 'tool_call'; index: number; id?: string; name?: string; arguments: string }
  | { seq: number; type: 'done'; messageId: string; model: string; usage: Usage; residency: ResidencyReceipt; /** The provider's, e.g. `length` when max_tokens cut the answer. */ finishReason?: string }
  | { seq: number; type: 'error'; problem: Problem }
  /** Keeps the gateway's idle timer from firing while the provider thinks. */
  | { seq: number; type: 'heartbeat' };

/**
 * How a relay tells a live stream from one whose producer died (its process
 * gone while NATS stays up): chat is never silent longer than the heartbeat
 * (a frame of some kind at least that often, also while the model thinks),
 * so a relay that heard nothing for the silence limit gives up.
 */
export const STREAM_HEARTBEAT_MS = 2_000;
export const STREAM_SILENCE_LIMIT_MS = 10_000;

/** What a client hears of an answer stopped because the chat or gateway replica serving it shut down. */
export const ANSWER_STOPPED_FOR_RESTART = 'The answer was stopped because the service restarted; please send the message again';

/** Sent by the gateway on `<stream subject>.ctl`. */
export type StreamControl = { ack: number } | { cancel: true };
