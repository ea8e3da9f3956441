import { Controller, Delete, Get, HttpCode, Post, Put, Query, Res, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import {
  adminListPrivacyRequestsInput,
  createLegalHoldInput,
  decisionBody,
  listLegalHoldsInput,
  listRetentionRunsInput,
  parseInput,
  processingActivitiesInput,
  processingRegisterReply,
  PrivacyRpc,
  retentionPoliciesBody,
  startRetentionRunInput,
  updateRetentionPoliciesInput,
  type Actor,
  type RequestMeta,
} from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { QuerySchema } from '../common/query-schema.js';
import { CurrentActor, RequestMetaParam } from '../common/request-context.js';
import { UuidParam } from '../common/path-param.js';
import { BodySchema, ValidBody } from '../common/zod-body.js';
import { ComplianceGuard } from './compliance.guard.js';
import { LiveAccountRequired } from '../auth/credential-scope.js';
import { Answers } from '../common/answers.js';

/** The compliance team's privacy routes; everyone else gets 403 here, before any RPC. */
@ApiTags('privacy (compliance)')
@ApiBearerAuth()
@UseGuards(ComplianceGuard)
@LiveAccountRequired()
@Controller('v1/admin/privacy')
export class PrivacyAdminController {
  constructor(private readonly rpc: RpcClient) {}

  @Get('requests')
  @Answers(PrivacyRpc.adminListRequests)
  @QuerySchema(adminListPrivacyRequestsInput, { describe: { awaiting: 'restrictions and objections waiting for compliance to decide' } })
  requests(@Query() query: unknown, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(PrivacyRpc.adminListRequests, parseInput(adminListPrivacyRequestsInput, query, 'query'), { actor, meta });
  }

  /** `{ decision: 'lift' | 'uphold' | 'reject', reason }` on a restriction or objection. */
  @Post('requests/:id/decision')
  @Answers(PrivacyRpc.decide)
  @HttpCode(200)
  @BodySchema(decisionBody)
  decide(@UuidParam('id') id: string, @ValidBody(decisionBody) body: any, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(PrivacyRpc.decide, { id, ...body }, { actor, meta });
  }

  @Get('retention-policies')
  @Answers(PrivacyRpc.listRetentionPolicies)
  @QuerySchema(PrivacyRpc.listRetentionPolicies.input)
  policies(@Query() query: unknown, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(PrivacyRpc.listRetentionPolicies, parseInput(PrivacyRpc.listRetentionPolicies.input, query, 'query'), { actor, meta });
  }

  /** One policy `{ service, category, retentionDays, basis? }` or a list of them. */
  @Put('retention-policies')
  @Answers(PrivacyRpc.updateRetentionPolicies)
  @BodySchema(retentionPoliciesBody)
  updatePolicies(@ValidBody(updateRetentionPoliciesInput) body: any, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(PrivacyRpc.updateRetentionPolicies, body, { actor, meta });
  }

  @Post('retention-runs')
  @Answers(PrivacyRpc.startRetentionRun, 202)
  @HttpCode(202)
  @BodySchema(startRetentionRunInput)
  startRun(@ValidBody(startRetentionRunInput) body: any, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(PrivacyRpc.startRetentionRun, body, { actor, meta });
  }

  @Get('retention-runs')
  @Answers(PrivacyRpc.listRetentionRuns)
  @QuerySchema(listRetentionRunsInput, { describe: { status: 'only runs in this state', dryRun: 'only dry runs (true) or only real ones (false)' } })
  runs(@Query() query: unknown, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(PrivacyRpc.listRetentionRuns, parseInput(listRetentionRunsInput, query, 'query'), { actor, meta });
  }

  @Get('retention-runs/:id')
  @Answers(PrivacyRpc.getRetentionRun)
  run(@UuidParam('id') id: string, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(PrivacyRpc.getRetentionRun, { id }, { actor, meta });
  }

  @Get('legal-holds')
  @Answers(PrivacyRpc.listLegalHolds)
  @QuerySchema(listLegalHoldsInput)
  holds(@Query() query: unknown, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(PrivacyRpc.listLegalHolds, parseInput(listLegalHoldsInput, query, 'query'), { actor, meta });
  }

  @Post('legal-holds')
  @Answers(PrivacyRpc.createLegalHold, 201)
  @HttpCode(201)
  @BodySchema(createLegalHoldInput)
  createHold(@ValidBody(createLegalHoldInput) body: any, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(PrivacyRpc.createLegalHold, body, { actor, meta });
  }

  /** Releases the hold (it stays on record). */
  @Delete('legal-holds/:id')
  @Answers(PrivacyRpc.releaseLegalHold)
  releaseHold(@UuidParam('id') id: string, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(PrivacyRpc.releaseLegalHold, { id }, { actor, meta });
  }

  /** The register of processing activities; `?format=csv` for a spreadsheet. */
  @Get('processing-activities')
  @Answers(processingRegisterReply, 200, 'The register; with ?format=csv, as a spreadsheet', ['text/csv'])
  @QuerySchema(processingActivitiesInput)
  async processingActivities(@Query() query: unknown, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta, @Res() reply: FastifyReply) {
    const { format } = parseInput(processingActivitiesInput, query, 'query');
    const answer = await this.rpc.call(PrivacyRpc.processingActivities, { format }, { actor, meta });
    if (format === 'csv' && 'csv' in answer) {
      reply.header('content-type', 'text/csv; charset=utf-8').header('content-disposition', 'attachment; filename="processing-activities.csv"').send(answer.csv);
      return;
    }
    reply.send(answer);
  }
}
