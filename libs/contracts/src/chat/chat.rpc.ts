import { z } from 'zod';
import { rpc } from '../common/rpc.js';
import { workspaceSchema } from '../identity/identity.schemas.js';
import * as s from './chat.schemas.js';
import { pageOf } from '../common/replies.js';
import * as r from './chat.replies.js';

const replySubject = z.string().regex(/^[A-Za-z0-9_.-]+$/).max(200);

/** Where and how a streamed completion flows back: frames on `subject`, control on `subject.ctl`. */
export const streamTarget = z.strictObject({
  subject: replySubject,
  /** Frames chat may send ahead of the last ack (backpressure). */
  window: z.number().int().min(1).max(1024).default(64),
});

/**
 * Core NATS, every chat replica (no queue group): which answers being written
 * to stop, because their conversation was deleted or their owner erased.
 */
export const CHAT_ANSWERS_STOP_SUBJECT = 'ally.chat.answers.stop';
/** One conversation, or a subject's data in one workspace (`private`, an org id) or in all (`all`). */
export type ChatAnswersStop = { conversationId: string } | { userId: string; scope: string };

export const ChatRpc = {
  listModels: rpc(r.modelListReply)('ally.rpc.chat.model.list', s.listModelsInput),
  createConversation: rpc(r.conversationReply)('ally.rpc.chat.conversation.create', s.createConversationInput),
  listConversations: rpc(pageOf(r.conversationReply))('ally.rpc.chat.conversation.list', s.listConversationsInput),
  getConversation: rpc(r.conversationWithMessagesReply)('ally.rpc.chat.conversation.get', s.getConversationInput),
  deleteConversation: rpc<void>()('ally.rpc.chat.conversation.delete', s.conversationIdInput),
  /** `cancel`: a subject whose `.ctl` carries `{ cancel: true }` when the caller's client went away. */
  postMessage: rpc(r.chatMessageReply)('ally.rpc.chat.message.create', s.postMessageInput.extend({ cancel: replySubject.optional() })),
  /** Validates, applies policy and quota, answers `{ accepted: true }`, then streams frames to `stream.subject`. */
  streamMessage: rpc<{ accepted: true }>()('ally.rpc.chat.message.stream', s.postMessageInput.extend({ stream: streamTarget })),
  createAssistant: rpc(r.assistantReply)('ally.rpc.chat.assistant.create', s.createAssistantInput),
  listAssistants: rpc(pageOf(r.assistantReply))('ally.rpc.chat.assistant.list', s.listAssistantsInput),
  /** The creator's private one, or an organisation's by its owners and admins; conversations that used it go on without it. */
  deleteAssistant: rpc<null>()('ally.rpc.chat.assistant.delete', s.assistantIdInput),
  /** OpenAI-compatible; the workspace comes from the API key (or `private`). */
  completions: rpc<{ completion: r.ChatCompletion; residency: r.ResidencyReceipt }>()(
    'ally.rpc.chat.completion.create',
    z.strictObject({ workspace: workspaceSchema, request: s.chatCompletionsInput, cancel: replySubject.optional() }),
  ),
  /** Which of `models` the catalog does not know, and the ones it does (for the caller's error message). */
  checkCatalog: rpc<{ unknown: string[]; known: string[] }>()('ally.rpc.chat.model.check', s.catalogCheckInput),
  /**
   * Reads a change the caller just made at identity (their `restrictToEu`, or an organisation's policy) into chat's
   * policy replica now, so it holds from the moment the change is answered instead of when identity's event arrives.
   */
  refreshPolicy: rpc<null>()('ally.rpc.chat.policy.refresh', s.refreshPolicyInput),
  completionsStream: rpc<{ accepted: true }>()(
    'ally.rpc.chat.completion.stream',
    z.strictObject({ workspace: workspaceSchema, request: s.chatCompletionsInput, stream: streamTarget }),
  ),
} as const;
