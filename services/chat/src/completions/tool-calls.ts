import { randomUUID } from 'node:crypto';
import type { ToolCall } from '@ally/contracts';
import type { AnswerSink, CompletionResult, StreamProgress } from './completion.service.js';

/** A piece of a call of the caller's tools as the provider streamed it: id and name come with the first. */
export interface ToolCallPiece {
  index: number;
  id?: string;
  name?: string;
  arguments: string;
}

/**
 * A streamed piece of a tool call, added to the calls so far and handed on. OpenAI sends a call's id, type and
 * name with its first piece, then its arguments in pieces under the same index. A server that numbers none
 * (some OpenAI-compatible ones) starts a call with its id or name and continues the last one otherwise; one
 * that names no id gets one made here, so its caller can answer the call; a name sent again is the same name.
 */
export async function toolCallPiece(
  piece: { index?: number; id?: string; function?: { name?: string; arguments?: string } },
  progress: StreamProgress,
  on: Pick<AnswerSink, 'toolCall'>,
): Promise<void> {
  const calls = (progress.toolCalls ??= []);
  const name = piece.function?.name || undefined;
  const index = piece.index ?? unnumberedIndex(calls, piece.id || undefined, name);
  const known = calls[index];
  const call = (calls[index] ??= { id: piece.id || `call_${randomUUID().replaceAll('-', '')}`, type: 'function', function: { name: '', arguments: '' } });
  const named = name !== undefined && call.function.name === '';
  if (named) call.function.name = name;
  const args = piece.function?.arguments ?? '';
  call.function.arguments += args;
  await on.toolCall?.({ index, ...(known ? {} : { id: call.id }), ...(named ? { name } : {}), arguments: args });
}

/** Where a piece without an index goes: a call of its own when it names another id or function, else the last call. */
function unnumberedIndex(calls: ToolCall[], id: string | undefined, name: string | undefined): number {
  const last = calls.at(-1);
  if (!last) return 0;
  const another = (id !== undefined && id !== last.id) || (id === undefined && name !== undefined && last.function.name !== '' && name !== last.function.name);
  return another ? calls.length : calls.length - 1;
}

export const toolCallsOf = (progress: StreamProgress): Pick<CompletionResult, 'toolCalls'> =>
  progress.toolCalls ? { toolCalls: progress.toolCalls.filter(Boolean) } : {};

/** What the model generated: its text and the calls it made, for counting when the provider reported no usage. */
export const answered = (progress: StreamProgress): string =>
  progress.toolCalls ? [progress.text, ...progress.toolCalls.filter(Boolean).map((c) => c.function.name + c.function.arguments)].join('') : progress.text;
