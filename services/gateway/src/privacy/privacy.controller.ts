import { Controller, Delete, Get, HttpCode, Param, Post, Query, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { z } from 'zod';
import { createPrivacyRequestInput, exportFormatSchema, listPrivacyRequestsInput, parseInput, PrivacyRpc, recordConsentInput, type Actor, type RequestMeta } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { Public } from '@ally/platform';
import { CurrentActor, RequestMetaParam } from '../common/request-context.js';
import { UuidParam } from '../common/uuid-param.js';
import { BodySchema, ValidBody } from '../common/zod-body.js';
import { LiveAccountRequired } from '../auth/credential-scope.js';

/** A download's query: `format` alone, so a typo is a 400 naming it rather than a silent default. */
const downloadQuery = z.strictObject({ format: exportFormatSchema });

/** Data-subject requests (the caller's own only) and consent records (no login). */
@ApiTags('privacy')
@ApiBearerAuth()
@LiveAccountRequired()
@Controller('v1/privacy')
export class PrivacyController {
  constructor(private readonly rpc: RpcClient) {}

  @Post('requests')
  @HttpCode(202)
  @BodySchema(createPrivacyRequestInput)
  create(@ValidBody(createPrivacyRequestInput) body: any, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(PrivacyRpc.createRequest, body, { actor, meta });
  }

  @Get('requests')
  list(@Query() query: unknown, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(PrivacyRpc.listRequests, parseInput(listPrivacyRequestsInput, query, 'query'), { actor, meta });
  }

  @Get('requests/:id')
  get(@UuidParam('id') id: string, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(PrivacyRpc.getRequest, { id }, { actor, meta });
  }

  /** The export package: `?format=zip` (default) or `json`; privacy sends it in parts, joined here. */
  @Get('requests/:id/download')
  async download(@UuidParam('id') id: string, @Query() query: unknown, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta, @Res() reply: FastifyReply) {
    const { format } = parseInput(downloadQuery, query, 'query');
    const file = await this.rpc.call(PrivacyRpc.download, { id, format }, { actor, meta });
    const parts: Buffer[] = [];
    for (let part = 0; part < file.parts; part++) {
      parts.push(Buffer.from((await this.rpc.call(PrivacyRpc.downloadPart, { id, format, part }, { actor, meta })).data, 'base64'));
    }
    reply
      .header('content-type', file.contentType)
      .header('content-disposition', `attachment; filename="${file.filename}"`)
      .header('cache-control', 'no-store')
      .header('x-content-sha256', file.sha256)
      .send(Buffer.concat(parts));
  }

  @Post('consents')
  @Public()
  @HttpCode(201)
  @BodySchema(recordConsentInput)
  recordConsent(@ValidBody(recordConsentInput) body: any, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(PrivacyRpc.recordConsent, body, { meta });
  }

  @Get('consents/:subjectId')
  @Public()
  consents(@Param('subjectId') subjectId: string, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(PrivacyRpc.getConsents, { subjectId }, { meta });
  }

  /** Withdraws every consent of the subject; the history stays. */
  @Delete('consents/:subjectId')
  @Public()
  withdraw(@Param('subjectId') subjectId: string, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(PrivacyRpc.withdrawConsents, { subjectId }, { meta });
  }
}
