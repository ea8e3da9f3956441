/** OpenAI's finish reasons, the only ones OpenAI's clients take (strongly typed ones fail on any other). */
export type OpenAiFinishReason = 'stop' | 'length' | 'content_filter' | 'tool_calls' | 'function_call';

const OPENAI: ReadonlySet<string> = new Set<OpenAiFinishReason>(['stop', 'length', 'content_filter', 'tool_calls', 'function_call']);

/** What OpenAI-compatible servers say instead (TGI, vLLM, Mistral-style and others), in OpenAI's words. */
const SAID_OTHERWISE: Readonly<Record<string, OpenAiFinishReason>> = {
  eos: 'stop',
  eos_token: 'stop',
  stop_sequence: 'stop',
  end_turn: 'stop',
  model_length: 'length',
  max_tokens: 'length',
};

/**
 * A provider's finish reason in OpenAI's words; `error` (an answer the server broke off) is for the caller to
 * treat as a failure, and what no one knows is left out.
 */
export function openAiFinishReason(reason: string | null | undefined): OpenAiFinishReason | 'error' | undefined {
  if (!reason) return undefined;
  if (OPENAI.has(reason)) return reason as OpenAiFinishReason;
  if (reason === 'error' || reason === 'abort') return 'error';
  return SAID_OTHERWISE[reason];
}
