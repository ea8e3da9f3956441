import { Readable } from 'node:stream';
import { Controller, Get, HttpCode, Post, Query, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { z } from 'zod';
import { createPrivacyRequestInput, exportFormatSchema, IdentityRpc, listPrivacyRequestsInput, parseInput, PrivacyRpc, ProblemError, type Actor, type RequestMeta } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { CurrentActor, RequestMetaParam } from '../common/request-context.js';
import { UuidParam } from '../common/path-param.js';
import { BodySchema, ValidBody } from '../common/zod-body.js';
import { LiveAccountRequired } from '../auth/credential-scope.js';
import { QuerySchema } from '../common/query-schema.js';
import { Answers, AnswersAs } from '../common/answers.js';

/** A download's query: `format` alone, so a typo is a 400 naming it rather than a silent default. */
const downloadQuery = z.strictObject({ format: exportFormatSchema });

/** Data-subject requests: the caller's own only. */
@ApiTags('privacy')
@ApiBearerAuth()
@LiveAccountRequired()
@Controller('v1/privacy')
export class PrivacyController {
  constructor(private readonly rpc: RpcClient) {}

  @Post('requests')
  @Answers(PrivacyRpc.createRequest, 202)
  @HttpCode(202)
  @BodySchema(createPrivacyRequestInput)
  async create(@ValidBody(createPrivacyRequestInput) body: any, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    await this.assertOwnScope(body.scope, actor, meta);
    return this.rpc.call(PrivacyRpc.createRequest, body, { actor, meta });
  }

  /** An organisation scope must be one of the caller's: any other is "not found", as everywhere. */
  private async assertOwnScope(scope: string, actor: Actor, meta: RequestMeta): Promise<void> {
    if (scope === 'all' || scope === 'private') return;
    const me = await this.rpc.call(IdentityRpc.getMe, {}, { actor, meta });
    if (!me.memberships.some((m) => m.orgId === scope)) {
      // identity keeps no past memberships: what is left of one sits under scope "all".
      throw new ProblemError(404, `Organisation ${scope} is not one you belong to; for the data of an organisation you left, use scope "all"`);
    }
  }

  @Get('requests')
  @Answers(PrivacyRpc.listRequests)
  @QuerySchema(listPrivacyRequestsInput)
  list(@Query() query: unknown, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(PrivacyRpc.listRequests, parseInput(listPrivacyRequestsInput, query, 'query'), { actor, meta });
  }

  @Get('requests/:id')
  @Answers(PrivacyRpc.getRequest)
  get(@UuidParam('id') id: string, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(PrivacyRpc.getRequest, { id }, { actor, meta });
  }

  /**
   * The export package: `?format=zip` (default) or `json`; privacy sends it in parts, passed on as they come
   * (held whole, a few large downloads at once would outgrow the gateway's memory). The first part is asked for
   * before the answer starts, so a package gone meanwhile is still a problem, not a cut-off file.
   */
  @Get('requests/:id/download')
  @AnswersAs(['application/zip', 'application/json'], 'The export package, every service\'s section (x-content-sha256: its SHA-256)')
  @QuerySchema(downloadQuery)
  async download(@UuidParam('id') id: string, @Query() query: unknown, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta, @Res() reply: FastifyReply) {
    const { format } = parseInput(downloadQuery, query, 'query');
    // Fastify answers HEAD with this handler: the headers a download would get, its parts neither read nor the download recorded.
    const headOnly = reply.request.method === 'HEAD';
    const file = await this.rpc.call(PrivacyRpc.download, { id, format, ...(headOnly ? { headOnly } : {}) }, { actor, meta });
    const send = (body: Readable) =>
      reply
        .header('content-type', file.contentType)
        .header('content-disposition', `attachment; filename="${file.filename}"`)
        .header('content-length', String(file.size))
        .header('cache-control', 'no-store')
        .header('x-content-sha256', file.sha256)
        .send(body);
    if (headOnly) return send(Readable.from([]));
    const part = async (n: number) => Buffer.from((await this.rpc.call(PrivacyRpc.downloadPart, { id, format, part: n }, { actor, meta })).data, 'base64');
    const first = file.parts > 0 ? await part(0) : Buffer.alloc(0);
    async function* parts() {
      yield first;
      for (let n = 1; n < file.parts; n++) yield await part(n);
    }
    send(Readable.from(parts()));
  }
}
