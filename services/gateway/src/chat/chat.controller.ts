import { Controller, Delete, Get, Headers, HttpCode, Param, Post, Query, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ChatRpc, createAssistantInput, createConversationInput, listConversationsInput, listModelsInput, messageBody, MODEL_NOT_FOUND, modelReply, parseInput, ProblemError, type Actor, type RequestMeta } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { CurrentActor, RequestMetaParam } from '../common/request-context.js';
import { QuerySchema } from '../common/query-schema.js';
import { UuidParam } from '../common/path-param.js';
import { BodySchema, ValidBody } from '../common/zod-body.js';
import { CancellableCalls } from './cancellable-call.js';
import { RESIDENCY_HEADER, residencyHeaderValue } from './residency-header.js';
import { SseRelay, sse } from './sse-relay.service.js';
import Negotiator from 'negotiator';
import { ApiKeyAllowed } from '../auth/credential-scope.js';
import { Answers, AnswersAs } from '../common/answers.js';

/** The OpenAPI words for a workspace that may be left out. */
const DEFAULT_WORKSPACE = { workspace: `"private" or an organisation id the caller belongs to (default: the API key's workspace, else private)` };

@ApiTags('chat')
@ApiBearerAuth()
@ApiKeyAllowed()
@Controller('v1')
export class ChatController {
  constructor(
    private readonly rpc: RpcClient,
    private readonly relay: SseRelay,
    private readonly calls: CancellableCalls,
  ) {}

  @Get('models')
  @Answers(ChatRpc.listModels)
  @QuerySchema(listModelsInput, { describe: DEFAULT_WORKSPACE })
  models(@Query() query: unknown, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(ChatRpc.listModels, parseInput(listModelsInput, query, 'query'), { actor, meta });
  }

  /** One model of the list (the OpenAI SDK's `models.retrieve`): the caller's policy decides, as for the list. */
  @Get('models/:id')
  @Answers(modelReply)
  @QuerySchema(listModelsInput, { describe: DEFAULT_WORKSPACE })
  async model(@Param('id') id: string, @Query() query: unknown, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    const models = await this.rpc.call(ChatRpc.listModels, parseInput(listModelsInput, query, 'query'), { actor, meta });
    const model = models.data.find((m) => m.id === id);
    if (!model) throw new ProblemError(404, `The model "${id.slice(0, 100)}" does not exist or your policy does not allow it`, { type: MODEL_NOT_FOUND });
    return model;
  }

  @Post('conversations')
  @Answers(ChatRpc.createConversation, 201)
  @BodySchema(createConversationInput)
  createConversation(@ValidBody(createConversationInput) body: any, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(ChatRpc.createConversation, body, { actor, meta });
  }

  @Get('conversations')
  @Answers(ChatRpc.listConversations)
  @QuerySchema(listConversationsInput)
  listConversations(@Query() query: unknown, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(ChatRpc.listConversations, parseInput(listConversationsInput, query, 'query'), { actor, meta });
  }

  @Get('conversations/:id')
  @Answers(ChatRpc.getConversation)
  @QuerySchema(ChatRpc.getConversation.input, { omit: ['id'] })
  getConversation(@UuidParam('id') id: string, @Query() query: object, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(ChatRpc.getConversation, parseInput(ChatRpc.getConversation.input, { ...query, id }, 'query'), { actor, meta });
  }

  @Delete('conversations/:id')
  @HttpCode(204)
  async deleteConversation(@UuidParam('id') id: string, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    await this.rpc.call(ChatRpc.deleteConversation, { id }, { actor, meta });
  }

  /** With `Accept: text/event-stream`: SSE `delta`… then `done` (usage, residency) or `error`. Otherwise 201 with the answer. */
  @Post('conversations/:id/messages')
  @Answers(ChatRpc.postMessage, 201, 'The assistant message (asked for without Accept: text/event-stream); its receipt also in x-ally-residency')
  @AnswersAs(['text/event-stream'], 'With Accept: text/event-stream: events `delta` { text } …, then `done` { messageId, model, usage, residency } or `error` (a problem)')
  @BodySchema(messageBody)
  async postMessage(
    @UuidParam('id') id: string,
    @ValidBody(messageBody) body: any,
    @Headers('accept') accept: string | undefined,
    @CurrentActor() actor: Actor,
    @RequestMetaParam() meta: RequestMeta,
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
  ) {
    const input = { conversationId: id, ...body };
    if (wantsEventStream(accept)) {
      return this.relay.relay(req, reply, (stream) => this.rpc.call(ChatRpc.streamMessage, { ...input, stream }, { actor, meta }), {
        frame: (f) =>
          f.type === 'delta'
            ? sse('delta', { text: f.text })
            : f.type === 'done'
              ? sse('done', { messageId: f.messageId, model: f.model, usage: f.usage, residency: f.residency })
              : f.type === 'error'
                ? sse('error', f.problem)
                : null,
        broken: (detail) => sse('error', { type: 'about:blank', title: 'Service Unavailable', status: 503, detail }),
      });
    }
    const message = await this.calls.run(reply.raw, (cancel, timeoutMs) => this.rpc.call(ChatRpc.postMessage, { ...input, cancel }, { actor, meta, timeoutMs }));
    if (message.residency) reply.header(RESIDENCY_HEADER, residencyHeaderValue(message.residency));
    reply.status(201).send(message);
  }

  @Post('assistants')
  @Answers(ChatRpc.createAssistant, 201)
  @BodySchema(createAssistantInput)
  createAssistant(@ValidBody(createAssistantInput) body: any, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(ChatRpc.createAssistant, body, { actor, meta });
  }

  /** Beyond API.md: a workspace's assistants are bounded (MAX_ASSISTANTS_PER_WORKSPACE), so one that is no longer needed can go. */
  @Delete('assistants/:id')
  @HttpCode(204)
  async deleteAssistant(@UuidParam('id') id: string, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    await this.rpc.call(ChatRpc.deleteAssistant, { id }, { actor, meta });
  }

  @Get('assistants')
  @Answers(ChatRpc.listAssistants)
  @QuerySchema(ChatRpc.listAssistants.input)
  listAssistants(@Query() query: unknown, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(ChatRpc.listAssistants, parseInput(ChatRpc.listAssistants.input, query, 'query'), { actor, meta });
  }
}

/**
 * The stream when the client prefers it to JSON, by RFC 9110's rules (media
 * types case-insensitive, `q` weights, `q=0` refuses); any type, or no Accept, is JSON.
 */
function wantsEventStream(accept: string | undefined): boolean {
  // Parameters other than q (`; charset=utf-8`) do not change which of the two is meant; Negotiator would match them against ours.
  const ranges = accept?.toLowerCase().replace(/;(?!\s*q=)[^;,]*/g, '');
  return new Negotiator({ headers: { accept: ranges } }).mediaType(['application/json', 'text/event-stream']) === 'text/event-stream';
}
