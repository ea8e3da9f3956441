import { z } from 'zod';
import { displayName, messageText, modelIdSchema, multilineText, plainText, storableText, VISIBLE } from '../common/text-fields.js';
import { workspaceSchema } from '../identity/identity.schemas.js';
import { pageParams, queryInt } from '../common/query-params.js';
import { idSchema } from '../common/validation.js';

export const MESSAGE_MAX_CHARS = 100_000;

const content = messageText(MESSAGE_MAX_CHARS);

export const listModelsInput = z.strictObject({ workspace: workspaceSchema.optional() });
export const createConversationInput = z.strictObject({
  workspace: workspaceSchema,
  title: plainText(200).min(1, 'must not be empty').optional(),
  assistantId: idSchema('must be an assistant id').optional(),
});
export const listConversationsInput = z.strictObject({ workspace: workspaceSchema, ...pageParams });
export const listAssistantsInput = listConversationsInput;
/** Model names to check against chat's catalog (an organisation's `allowedModels` before identity stores them). */
export const catalogCheckInput = z.strictObject({ models: z.array(z.string().max(200)).max(100) });
/** What changed at identity: the caller's settings, or (with `orgId`) an organisation's policy. */
/** What changed at identity: the caller's settings, `orgId`'s policy, or (`removedMember`) who just left `orgId`. */
export const refreshPolicyInput = z
  .strictObject({ orgId: idSchema('must be a valid organisation id').optional(), removedMember: idSchema('must be a valid user id').optional() })
  .refine((i) => !i.removedMember || i.orgId, { path: ['orgId'], message: 'is required with removedMember' });
export const conversationIdInput = z.strictObject({ id: idSchema('must be a conversation id') });
export const assistantIdInput = z.strictObject({ id: idSchema('must be an assistant id') });
/** A conversation with a page of its messages: the newest `limit` (as far as they fit one answer), then older ones after `cursor`. */
export const getConversationInput = conversationIdInput.extend({
  limit: queryInt(1, 200, 100),
  cursor: z.string().max(200).optional(),
});
/** The HTTP body of `POST /v1/conversations/:id/messages`. */
export const messageBody = z.strictObject({ content, model: modelIdSchema.optional() });
export const postMessageInput = messageBody.extend({ conversationId: idSchema('must be a conversation id') });
export const createAssistantInput = z.strictObject({
  workspace: workspaceSchema,
  /** Shown to every member of an organisation: no invisible or text-direction characters to disguise it. */
  name: displayName(100),
  /** An organisation's is stored as text (a private one sealed): what Postgres refuses is a 400 here. */
  instructions: multilineText(20_000).min(1, 'must not be empty'),
  model: modelIdSchema.optional(),
});

/** Which size limit a message's content broke, if it broke one (a union's failure names none of its options' reasons). */
function contentLimitBroken(content: unknown): string | undefined {
  if (typeof content === 'string') return content.length > MESSAGE_MAX_CHARS ? `must be at most ${MESSAGE_MAX_CHARS} characters` : undefined;
  if (!Array.isArray(content)) return undefined;
  if (content.length > 100) return 'must hold at most 100 parts';
  const texts = content.map((p) => (p && typeof p === 'object' && typeof (p as { text?: unknown }).text === 'string' ? (p as { text: string }).text : ''));
  if (texts.some((t) => t.length > MESSAGE_MAX_CHARS)) return `must hold parts of at most ${MESSAGE_MAX_CHARS} characters`;
  return texts.reduce((n, t) => n + t.length, 0) > MESSAGE_MAX_CHARS ? `its parts together must be at most ${MESSAGE_MAX_CHARS} characters` : undefined;
}

/** A function name as OpenAI takes it (a tool's, a speaker's). */
const functionName = (what: string) => z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, `may hold letters A–Z and a–z, digits, _ and - (1 to 64), as OpenAI takes ${what}`);

/** A call of one of the caller's tools, as the model made it and the caller sends it back with the history. */
/**
 * A call's id as providers make them (`call_…`, `chatcmpl-tool-…`): an identifier, not a place for text, which
 * would reach the model unfiltered and unredacted.
 */
const toolCallId = z.string().regex(/^[A-Za-z0-9_.:=+-]{1,200}$/, 'must be 1 to 200 letters, digits or _ . : = + - (a tool call id)');

const toolCall = z.object({
  id: toolCallId,
  type: z.literal('function', { error: 'must be "function" (Ally passes function tools on)' }),
  function: z.object({ name: functionName('a function name'), arguments: z.string().max(MESSAGE_MAX_CHARS) }),
});

const chatMessage = z.object({
  role: z.enum(['system', 'user', 'assistant', 'developer', 'tool'], { error: 'must be system, developer, user, assistant or tool' }),
  content: z.union([
    // Empty only as an answer: a model's may be (a provider's output filter), and clients send the history back as they got it.
    storableText(MESSAGE_MAX_CHARS),
    z
      .array(z.object({ type: z.literal('text'), text: storableText(MESSAGE_MAX_CHARS) }))
      // No parts is no message: it was sent on as "" (and billed).
      .min(1, 'must hold at least one part')
      .max(100, { message: 'must hold at most 100 parts', abort: true })
      // The parts are one message to the model: the same limit as one string, and something to say.
      .refine((parts) => parts.reduce((n, p) => n + p.text.length, 0) <= MESSAGE_MAX_CHARS, { message: `its parts together must be at most ${MESSAGE_MAX_CHARS} characters`, abort: true })
      .refine((parts) => parts.some((p) => VISIBLE.test(p.text)), 'must not be empty'),
  ], {
    // A union names no option's own reason: the limits a text or a list of parts broke are named here.
    error: (issue) => contentLimitBroken(issue.input) ?? 'must be text, or a list of { type: "text", text } parts (Ally supports text only: no images, audio or files)',
  }).nullish(),
  // As OpenAI takes it: a provider's refusal of another would reach the caller as a vague 422.
  name: functionName('a name').optional(),
  /** An assistant turn that called the caller's tools (its content may then be null). */
  tool_calls: z.array(toolCall).max(128).nullish(),
  /** A tool's result: the call it answers. */
  tool_call_id: toolCallId.nullish(),
  /** An assistant turn the model refused, as OpenAI answered it (its content then null): what it said. */
  refusal: storableText(MESSAGE_MAX_CHARS).nullish(),
}).superRefine((m, ctx) => {
  const calls = m.tool_calls?.length ?? 0;
  if (m.refusal != null && m.role !== 'assistant') ctx.addIssue({ code: 'custom', path: ['refusal'], message: 'is only allowed on an assistant message' });
  if (m.content == null) {
    if (m.role !== 'assistant' || (calls === 0 && m.refusal == null)) {
      ctx.addIssue({ code: 'custom', path: ['content'], message: m.role === 'assistant' ? 'is required unless the message has tool_calls or a refusal' : 'is required' });
    }
  } else if (m.role !== 'assistant' && m.role !== 'tool' && typeof m.content === 'string' && !VISIBLE.test(m.content)) {
    // A tool may well have returned nothing.
    ctx.addIssue({ code: 'custom', path: ['content'], message: 'must not be empty' });
  }
  if (m.tool_calls != null && m.role !== 'assistant') ctx.addIssue({ code: 'custom', path: ['tool_calls'], message: 'is only allowed on an assistant message' });
  if (m.role === 'tool' && m.tool_call_id == null) ctx.addIssue({ code: 'custom', path: ['tool_call_id'], message: 'is required on a tool message (the id of the call it answers)' });
  if (m.role !== 'tool' && m.tool_call_id != null) ctx.addIssue({ code: 'custom', path: ['tool_call_id'], message: 'is only allowed on a tool message' });
});

/** A function the model may call (OpenAI's function tool); its description and parameters are text the model reads. */
const functionTool = z.object({
  type: z.literal('function', { error: 'must be "function" (Ally passes function tools on; not custom or built-in ones)' }),
  function: z.object({
    name: functionName('a function name'),
    // null is "none", as clients that write every field send it.
    description: z.string().max(MESSAGE_MAX_CHARS).nullish(),
    parameters: z.record(z.string(), z.unknown()).nullish(),
    strict: z.boolean().nullish(),
  }),
});

/**
 * A field of OpenAI's request that changes what the answer is (several choices, tool calls, a JSON
 * format, log probabilities, audio) and that Ally does not honour: refused, since ignoring it would
 * hand the caller an answer other than the one it asked for.
 */
const unsupported = (what: string) => z.never({ error: `is not supported by Ally (${what})` }).nullish();

const stopSequence = z.string().min(1, 'must not be empty').max(200, 'must be at most 200 characters');

/** OpenAI's chat completions request, as much of it as Ally honours; other unknown fields are ignored like OpenAI does. */
export const chatCompletionsInput = z.object({
  model: modelIdSchema,
  messages: z.array(chatMessage).min(1, 'must hold at least one message').max(500),
  // null is "the default", as OpenAI takes it (clients send it for a setting left alone).
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  max_tokens: z.number().int().min(1).max(128_000).nullish(),
  max_completion_tokens: z.number().int().min(1).max(128_000).nullish(),
  user: z.string().max(256).nullish(),
  // Honoured as OpenAI does (passed on to the deployment): each changes the answer, so ignoring it would not do.
  stop: z
    .union([stopSequence, z.array(stopSequence).min(1).max(4)], {
      error: 'must be a stop sequence (1 to 200 characters) or a list of 1 to 4 of them',
    })
    .nullish(),
  presence_penalty: z.number().min(-2).max(2).nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  seed: z.number().int().min(-(2 ** 53) + 1).max(2 ** 53 - 1).nullish(),
  logit_bias: z.record(z.string().regex(/^\d{1,7}$/, 'must map token ids'), z.number().min(-100).max(100)).refine((m) => Object.keys(m).length <= 300, 'must hold at most 300 token ids').nullish(),
  // Says what fits for 0 as for 2 (the message was "not supported above 1").
  n: z.literal(1, { error: 'must be 1 (several choices per request are not supported by Ally)' }).nullish(),
  // Passed on: the caller runs its tools and sends their results back as `tool` messages.
  tools: z.array(functionTool).max(128, 'must hold at most 128 tools').nullish(),
  tool_choice: z
    .union([z.enum(['none', 'auto', 'required']), z.object({ type: z.literal('function'), function: z.object({ name: functionName('a function name') }) })], {
      error: 'must be "none", "auto", "required" or { type: "function", function: { name } }',
    })
    .nullish(),
  parallel_tool_calls: z.boolean().nullish(),
  functions: unsupported('the deprecated function calls: use tools'),
  function_call: unsupported('the deprecated function calls: use tool_choice'),
  // Passed on: JSON mode, or the SDK's structured outputs (`chat.completions.parse` with a JSON schema).
  response_format: z
    .discriminatedUnion('type', [
      z.strictObject({ type: z.literal('text') }),
      z.strictObject({ type: z.literal('json_object') }),
      z.strictObject({
        type: z.literal('json_schema'),
        json_schema: z.strictObject({
          name: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1 to 64 letters, digits, _ or -'),
          description: z.string().max(2_000).optional(),
          schema: z.record(z.string(), z.unknown()).optional(),
          strict: z.boolean().nullish(),
        }),
      }),
    ], { error: 'must be { type: "text" }, { type: "json_object" } or { type: "json_schema", json_schema: { name, schema } }' })
    .nullish(),
  logprobs: z.literal(false, { error: 'is not supported by Ally (log probabilities)' }).nullish(),
  top_logprobs: unsupported('log probabilities'),
  audio: unsupported('audio output'),
  modalities: z.array(z.literal('text', { error: 'is not supported by Ally (only "text")' })).nullish(),
  web_search_options: unsupported('web search'),
  prediction: unsupported('predicted outputs'),
  reasoning_effort: unsupported('reasoning models'),
}).superRefine((r, ctx) => {
  if (r.stream_options != null && r.stream !== true) ctx.addIssue({ code: 'custom', path: ['stream_options'], message: 'is only allowed when stream is true' });
  const tools = new Set((r.tools ?? []).map((t) => t.function.name));
  if (tools.size < (r.tools?.length ?? 0)) ctx.addIssue({ code: 'custom', path: ['tools'], message: 'must name each function once' });
  // "auto" without tools has nothing to choose from, and does no harm; the others ask for a call that cannot be made.
  const named = typeof r.tool_choice === 'object' && r.tool_choice !== null ? r.tool_choice.function.name : undefined;
  if ((r.tool_choice === 'required' || named !== undefined) && tools.size === 0) {
    ctx.addIssue({ code: 'custom', path: ['tool_choice'], message: 'may ask for a tool call only when tools are given' });
  }
  if (named !== undefined && tools.size > 0 && !tools.has(named)) {
    ctx.addIssue({ code: 'custom', path: ['tool_choice', 'function', 'name'], message: 'must name one of the tools' });
  }
  // As OpenAI checks it: the calls of an assistant turn are answered, each once, by the tool messages right after it.
  let open: { at: number; ids: Set<string> } | undefined;
  const unanswered = () => {
    if (open?.ids.size) ctx.addIssue({ code: 'custom', path: ['messages', open.at, 'tool_calls'], message: `must each be answered by a tool message right after it (not answered: ${[...open.ids].join(', ')})` });
    open = undefined;
  };
  r.messages.forEach((m, i) => {
    if (m.role === 'tool') {
      if (m.tool_call_id != null && !open?.ids.delete(m.tool_call_id)) {
        ctx.addIssue({ code: 'custom', path: ['messages', i, 'tool_call_id'], message: 'must be the id of a call of the assistant message before it, not yet answered' });
      }
      return;
    }
    unanswered();
    if (m.tool_calls?.length) open = { at: i, ids: new Set(m.tool_calls.map((c) => c.id)) };
  });
  unanswered();
});

export type ChatCompletionsInput = z.infer<typeof chatCompletionsInput>;
