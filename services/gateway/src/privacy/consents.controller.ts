import { Controller, Delete, Get, HttpCode, Post, Query } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import { consentPageInput, consentSubjectIdSchema, parseInput, PrivacyRpc, recordConsentInput, type RequestMeta } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { Public } from '@ally/platform';
import { PathParam } from '../common/path-param.js';
import { RequestMetaParam } from '../common/request-context.js';
import { QuerySchema } from '../common/query-schema.js';
import { BodySchema, ValidBody } from '../common/zod-body.js';
import { Answers } from '../common/answers.js';
import { ConsentRateLimited } from '../auth/rate-limits.js';

/**
 * Consent records of a pseudonymous subject (a cookie banner's id): no login, so the routes that store a decision
 * have a per-IP limit of their own (a made-up id per request would otherwise store rows as fast as the API answers),
 * apart from the sign-ins' (a banner's visitors behind one office address would lock its staff out of signing in).
 */
@ApiTags('privacy')
@Public()
@Controller('v1/privacy')
export class ConsentsController {
  constructor(private readonly rpc: RpcClient) {}

  @Post('consents')
  @ConsentRateLimited()
  @Answers(PrivacyRpc.recordConsent, 201)
  @HttpCode(201)
  @BodySchema(recordConsentInput)
  recordConsent(@ValidBody(recordConsentInput) body: any, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(PrivacyRpc.recordConsent, body, { meta });
  }

  /** The current consents and a page of the history, newest first (`?limit=&cursor=`). */
  @Get('consents/:subjectId')
  @Answers(PrivacyRpc.getConsents)
  @QuerySchema(consentPageInput, { omit: ['subjectId'] })
  consents(@PathParam('subjectId', consentSubjectIdSchema) subjectId: string, @Query() query: Record<string, unknown>, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(PrivacyRpc.getConsents, parseInput(PrivacyRpc.getConsents.input, { ...query, subjectId }, 'query'), { meta });
  }

  /** Withdraws every consent of the subject; the history stays. */
  @Delete('consents/:subjectId')
  @ConsentRateLimited()
  @Answers(PrivacyRpc.withdrawConsents)
  withdraw(@PathParam('subjectId', consentSubjectIdSchema) subjectId: string, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(PrivacyRpc.withdrawConsents, { subjectId }, { meta });
  }
}
