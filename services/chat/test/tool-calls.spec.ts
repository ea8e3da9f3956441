import { describe, expect, it } from '@jest/globals';
import type { StreamProgress } from '../src/completions/completion.service.js';
import { answered, toolCallPiece, toolCallsOf, type ToolCallPiece } from '../src/completions/tool-calls.js';

/** The calls and the pieces handed on, for the chunks' `delta.tool_calls` given in order. */
async function put(pieces: Parameters<typeof toolCallPiece>[0][]) {
  const progress: StreamProgress = { text: '' };
  const sent: ToolCallPiece[] = [];
  for (const piece of pieces) await toolCallPiece(piece, progress, { toolCall: async (p) => void sent.push(p) });
  return { calls: toolCallsOf(progress).toolCalls, sent, progress };
}

describe('tool calls put together from a stream', () => {
  it("takes OpenAI's pieces: id, type and name first, then the arguments under the call's index", async () => {
    const { calls, sent } = await put([
      { index: 0, id: 'call_a', function: { name: 'wetter', arguments: '' } },
      { index: 0, function: { arguments: '{"ort":' } },
      { index: 1, id: 'call_b', function: { name: 'uhrzeit', arguments: '{}' } },
      { index: 0, function: { arguments: '"Köln"}' } },
    ]);
    expect(calls).toEqual([
      { id: 'call_a', type: 'function', function: { name: 'wetter', arguments: '{"ort":"Köln"}' } },
      { id: 'call_b', type: 'function', function: { name: 'uhrzeit', arguments: '{}' } },
    ]);
    expect(sent).toEqual([
      { index: 0, id: 'call_a', name: 'wetter', arguments: '' },
      { index: 0, arguments: '{"ort":' },
      { index: 1, id: 'call_b', name: 'uhrzeit', arguments: '{}' },
      { index: 0, arguments: '"Köln"}' },
    ]);
  });

  it('continues the last call for a piece without an index, id or new name, and starts one for another id or name', async () => {
    const { calls } = await put([
      { id: 'call_a', function: { name: 'wetter', arguments: '{"ort"' } },
      { function: { arguments: ':"Köln"}' } },
      // A server that names the function in every piece: the same call.
      { function: { name: 'wetter', arguments: '' } },
      { id: 'call_b', function: { name: 'wetter', arguments: '{}' } },
      { function: { name: 'uhrzeit', arguments: '{}' } },
    ]);
    expect(calls?.map((c) => [c.function.name, c.function.arguments])).toEqual([
      ['wetter', '{"ort":"Köln"}'],
      ['wetter', '{}'],
      ['uhrzeit', '{}'],
    ]);
  });

  it('makes an id for a call the server named none, and hands it on with the first piece', async () => {
    const { calls, sent } = await put([{ index: 0, function: { name: 'wetter', arguments: '{}' } }]);
    expect(calls?.[0].id).toMatch(/^call_[0-9a-f]{32}$/);
    expect(sent).toEqual([{ index: 0, id: calls?.[0].id, name: 'wetter', arguments: '{}' }]);
  });

  it('counts the calls with the text when the provider reports no usage', async () => {
    const { progress } = await put([{ index: 0, id: 'call_a', function: { name: 'wetter', arguments: '{}' } }]);
    progress.text = 'Moment.';
    expect(answered(progress)).toBe('Moment.wetter{}');
    expect(answered({ text: 'Nur Text' })).toBe('Nur Text');
  });
});
