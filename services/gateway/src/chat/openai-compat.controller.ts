import { Body, Controller, HttpCode, Post, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { nuid } from '@nats-io/transport-node';
import { ChatRpc, chatCompletionReply, chatCompletionsInput, parseInput, type Actor, type RequestMeta } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { Answers } from '../common/answers.js';
import { openAiError } from '@ally/platform';
import { CurrentActor, RequestMetaParam } from '../common/request-context.js';
import { BodySchema } from '../common/zod-body.js';
import { CancellableCalls } from './cancellable-call.js';
import { RESIDENCY_HEADER, residencyHeaderValue } from './residency-header.js';
import { SseRelay } from './sse-relay.service.js';
import { ApiKeyAllowed } from '../auth/credential-scope.js';

const data = (payload: unknown) => `data: ${JSON.stringify(payload)}\n\n`;

/**
 * OpenAI's `POST /v1/chat/completions`, so the official SDK pointed at Ally
 * with an Ally API key works unchanged. The API key's workspace (or `private`)
 * decides the policy; the residency receipt is in `x-ally-residency`. Its
 * errors carry OpenAI's `error` member (the global ProblemFilter, by path).
 */
@ApiTags('chat')
@ApiBearerAuth()
@ApiKeyAllowed()
@Controller('v1/chat')
export class OpenAiCompatController {
  constructor(
    private readonly rpc: RpcClient,
    private readonly relay: SseRelay,
    private readonly calls: CancellableCalls,
  ) {}

  @Post('completions')
  @Answers(chatCompletionReply, 200, "OpenAI's chat.completion object; with stream: true, its chat.completion.chunk events, then data: [DONE]. The receipt in x-ally-residency", [
    'text/event-stream',
  ])
  @HttpCode(200)
  @BodySchema(chatCompletionsInput)
  async completions(@Body() body: unknown, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta, @Req() req: FastifyRequest, @Res() reply: FastifyReply) {
    const request = parseInput(chatCompletionsInput, body);
    const workspace = actor.apiKeyWorkspace ?? 'private';
    if (!request.stream) {
      const { completion, residency } = await this.calls.run(reply.raw, (cancel, timeoutMs) => this.rpc.call(ChatRpc.completions, { workspace, request, cancel }, { actor, meta, timeoutMs }));
      reply.header(RESIDENCY_HEADER, residencyHeaderValue(residency)).status(200).send(completion);
      return;
    }
    // chat names the answer in its first frame (the id its usage is recorded under, as for a whole answer).
    let id = `chatcmpl-${nuid.next()}`;
    const created = Math.floor(Date.now() / 1000);
    const chunk = (delta: Record<string, unknown>, finish: string | null) => ({
      id,
      object: 'chat.completion.chunk',
      created,
      model: request.model,
      choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
    });
    await this.relay.relay(req, reply, (stream) => this.rpc.call(ChatRpc.completionsStream, { workspace, request, stream }, { actor, meta }), {
      frame: (f) => {
        switch (f.type) {
          case 'start':
            if (f.messageId) id = `chatcmpl-${f.messageId}`;
            return data(chunk({ role: 'assistant', content: '' }, null));
          case 'delta':
            return data(chunk({ content: f.text }, null));
          case 'tool_call': {
            // As OpenAI streams a call: its id, type and name with the first piece, then its arguments under its index.
            const call = { index: f.index, ...(f.id ? { id: f.id, type: 'function' } : {}), function: { ...(f.name ? { name: f.name } : {}), arguments: f.arguments } };
            return data(chunk({ tool_calls: [call] }, null));
          }
          case 'done': {
            const usage = { prompt_tokens: f.usage.promptTokens, completion_tokens: f.usage.completionTokens, total_tokens: f.usage.promptTokens + f.usage.completionTokens };
            const tail = request.stream_options?.include_usage ? data({ ...chunk({}, null), choices: [], usage }) : '';
            return data(chunk({}, f.finishReason ?? 'stop')) + tail + 'data: [DONE]\n\n';
          }
          case 'error':
            return data({ error: openAiError(f.problem) });
          default:
            return null;
        }
      },
      broken: (detail) => data({ error: openAiError({ type: 'about:blank', title: 'Service Unavailable', status: 503, detail }) }),
    });
  }
}
