import { describe, expect, it } from '@jest/globals';
import OpenAI from 'openai';
import { completionChunks } from '../src/completions/provider-stream.js';

/** A provider's SSE body as it may arrive: in pieces that cut events and even characters apart. */
function sseResponse(pieces: (string | Uint8Array)[]): Response {
  const encoder = new TextEncoder();
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const piece of pieces) controller.enqueue(typeof piece === 'string' ? encoder.encode(piece) : piece);
      controller.close();
    },
  });
  return new Response(body, { headers: { 'content-type': 'text/event-stream', 'x-request-id': 'req_1' } });
}

const chunk = (content: string) => JSON.stringify({ id: 'c', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content } }] });

async function collect(response: Response) {
  const out: OpenAI.ChatCompletionChunk[] = [];
  for await (const c of completionChunks(response)) out.push(c);
  return out;
}

describe('completionChunks', () => {
  it('yields every chunk in order across reads that split events and multi-byte characters, and stops at [DONE]', async () => {
    const euro = new TextEncoder().encode(`data: ${chunk('5 €')}\n\n`);
    const cut = euro.length - 5; // inside the three bytes of "€"
    const chunks = await collect(
      sseResponse([
        `data: ${chunk('Hallo')}\n`,
        `\ndata: ${chunk(' Welt')}\r\n\r\n: keep-alive\n\n`,
        euro.subarray(0, cut),
        euro.subarray(cut),
        `data: ${JSON.stringify({ id: 'c', choices: [], usage: { prompt_tokens: 3, completion_tokens: 3 } })}\n\n`,
        'data: [DONE]\n\n',
        `data: ${chunk('after done')}\n\n`,
      ]),
    );
    expect(chunks.map((c) => c.choices[0]?.delta?.content ?? null)).toEqual(['Hallo', ' Welt', '5 €', null]);
    expect(chunks[3].usage).toEqual({ prompt_tokens: 3, completion_tokens: 3 });
  });

  it('turns an error in the stream into the SDK’s APIError, as its own reader does', async () => {
    const stream = collect(sseResponse([`data: ${chunk('a')}\n\n`, `data: ${JSON.stringify({ error: { message: 'overloaded', type: 'server_error', code: 'overloaded' } })}\n\n`]));
    await expect(stream).rejects.toBeInstanceOf(OpenAI.APIError);
    await expect(stream).rejects.toMatchObject({ message: 'overloaded', code: 'overloaded', requestID: 'req_1' });

    const named = collect(sseResponse([`event: error\ndata: ${JSON.stringify({ message: 'bad gateway' })}\n\n`]));
    await expect(named).rejects.toMatchObject({ message: 'bad gateway' });
  });

  it('takes a body that ends before [DONE] and without a finish reason for a broken answer, not a complete one', async () => {
    const cut = collect(sseResponse([`data: ${chunk('Die Antwort ist unvoll')}\n\n`]));
    await expect(cut).rejects.toBeInstanceOf(OpenAI.APIConnectionError);
    await expect(cut).rejects.toThrow('before the answer was complete');

    const finishedWithoutDone = JSON.stringify({ id: 'c', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] });
    await expect(collect(sseResponse([`data: ${chunk('Fertig.')}\n\n`, `data: ${finishedWithoutDone}\n\n`]))).resolves.toHaveLength(2);
  });

  it('ends at [DONE] even while the body stays open, and takes a connection lost after the finish reason for the end', async () => {
    let open!: ReadableStreamDefaultController<Uint8Array>;
    const stalled = collect(new Response(new ReadableStream<Uint8Array>({ start: (c) => void (open = c) })));
    open.enqueue(new TextEncoder().encode(`data: ${chunk('Fertig.')}\n\ndata: [DONE]\n\n`));
    await expect(stalled).resolves.toHaveLength(1);
    open.error(new Error('other side closed')); // afterwards: changes nothing

    let lost!: ReadableStreamDefaultController<Uint8Array>;
    const finishedThenLost = collect(new Response(new ReadableStream<Uint8Array>({ start: (c) => void (lost = c) })));
    lost.enqueue(new TextEncoder().encode(`data: ${JSON.stringify({ id: 'c', choices: [{ index: 0, delta: { content: 'Ende' }, finish_reason: 'stop' }] })}\n\n`));
    lost.error(Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' }));
    await expect(finishedThenLost).resolves.toHaveLength(1);
  });

  it('turns a body that fails mid-answer into the SDK’s connection error', async () => {
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({ start: (c) => void (controller = c) });
    const chunks = collect(new Response(body));
    controller.enqueue(new TextEncoder().encode(`data: ${chunk('Hallo')}\n\n`));
    controller.error(Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' }));
    await expect(chunks).rejects.toBeInstanceOf(OpenAI.APIConnectionError);
    await expect(chunks).rejects.toThrow('broke off: other side closed');
  });

  it('refuses an event that is not JSON, and a response without a body', async () => {
    await expect(collect(sseResponse(['data: {not json\n\n']))).rejects.toThrow('not JSON');
    await expect(collect(new Response(null))).rejects.toBeInstanceOf(OpenAI.OpenAIError);
  });
});
