import type { Problem } from '../common/problem.js';
/** What actually served a completion (not what the policy allowed). */
export interface ResidencyReceipt {
  provider: 'openai' | 'azure' | 'openai-compatible';
  deployment: string;
  deploymentType: string;
  region: string;
  /** The region the provider itself reported (Azure's x-ms-region), when it reports one. */
  reportedRegion: string | null;
  /** Whether everything this answer took stayed in the EU: false also when `alsoSentTo` names a deployment outside it. */
  euResident: boolean;
  /**
   * Where else the prompt went outside the EU before this answer: a deployment
   * configured as EU that reported another region (its answer was not used), a
   * deployment outside the EU that failed after the prompt reached it, a
   * moderation endpoint outside the EU. Absent when none.
   */
  alsoSentTo?: { deployment: string; region: string; reportedRegion: string }[];
  policy: { restrictToEu: boolean; orgEuOnly: boolean; allowedModels: string[] | null; workspace: string };
  at: string;
}

export interface Usage {
  promptTokens: number;
  completionTokens: number;
}

export interface ChatMessage {
  id: string;
  role: 'user' | 'assistant';
  content: string;
  createdAt: string;
  model?: string;
  usage?: Usage;
  residency?: ResidencyReceipt;
  status?: 'complete' | 'aborted';
}

export interface Conversation {
  id: string;
  workspace: string;
  title: string | null;
  assistantId: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface ConversationWithMessages extends Conversation {
  /** Oldest first: the newest page of the conversation, or the one before `cursor`. */
  messages: ChatMessage[];
  /** Where the older messages continue (`?cursor=`); null once the page reaches the first message. */
  nextCursor: string | null;
}

export interface Assistant {
  id: string;
  workspace: string;
  name: string;
  instructions: string;
  model: string | null;
  createdAt: string;
}

/** The problem type of a model the catalog does not have, or the caller's policy hides (OpenAI's code `model_not_found`). */
export const MODEL_NOT_FOUND = 'https://ally.eu/problems/model-not-found';

export interface ModelList {
  object: 'list';
  data: { id: string; object: 'model'; created: number; owned_by: string; region: string; euResident: boolean }[];
}

/** One frame of a completion streamed from chat to the gateway over NATS. */
export type StreamFrame =
  /** The provider accepted the call: this receipt is final (no fallback after it). */
  | { seq: number; type: 'start'; residency: ResidencyReceipt }
  | { seq: number; type: 'delta'; text: string }
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
