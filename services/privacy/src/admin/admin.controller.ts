import { Controller } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { actorOf, listPage, parseRpcInput, PrivacyRpc, type RpcRequest } from '@ally/contracts';
import { requireCompliance } from '../common/privacy-errors.js';
import { LegalHoldsService } from '../legal-holds/legal-holds.service.js';
import { ProcessingRegisterService } from '../register/processing-register.service.js';
import { DecisionsService } from '../requests/decisions.service.js';
import { RequestsService } from '../requests/requests.service.js';
import { RetentionPoliciesService } from '../retention/retention-policies.service.js';
import { RetentionRunsService } from '../retention/retention-runs.service.js';

/** `/v1/admin/privacy/*`: the compliance team only (checked here as well as at the gateway). */
@Controller()
export class AdminController {
  constructor(
    private readonly requests: RequestsService,
    private readonly decisions: DecisionsService,
    private readonly policies: RetentionPoliciesService,
    private readonly runs: RetentionRunsService,
    private readonly holds: LegalHoldsService,
    private readonly register: ProcessingRegisterService,
  ) {}

  @MessagePattern(PrivacyRpc.adminListRequests.subject)
  listRequests(@Payload() req: RpcRequest) {
    requireCompliance(actorOf(req));
    const { status, awaiting, limit, cursor } = parseRpcInput(PrivacyRpc.adminListRequests.input, req.input, 'query');
    return this.requests.listAll({ status, awaiting }, limit, cursor);
  }

  @MessagePattern(PrivacyRpc.listRetentionPolicies.subject)
  async listPolicies(@Payload() req: RpcRequest) {
    requireCompliance(actorOf(req));
    const page = parseRpcInput(PrivacyRpc.listRetentionPolicies.input, req.input, 'query');
    return listPage(await this.policies.list(), (p) => `${p.service}/${p.category}`, page);
  }

  @MessagePattern(PrivacyRpc.updateRetentionPolicies.subject)
  async updatePolicies(@Payload() req: RpcRequest) {
    const actor = requireCompliance(actorOf(req));
    const input = parseRpcInput(PrivacyRpc.updateRetentionPolicies.input, req.input);
    return { data: await this.policies.update(actor, Array.isArray(input) ? input : [input]) };
  }

  @MessagePattern(PrivacyRpc.startRetentionRun.subject)
  startRun(@Payload() req: RpcRequest) {
    const actor = requireCompliance(actorOf(req));
    return this.runs.start(actor, parseRpcInput(PrivacyRpc.startRetentionRun.input, req.input));
  }

  @MessagePattern(PrivacyRpc.getRetentionRun.subject)
  getRun(@Payload() req: RpcRequest) {
    requireCompliance(actorOf(req));
    return this.runs.get(parseRpcInput(PrivacyRpc.getRetentionRun.input, req.input, 'path').id);
  }

  @MessagePattern(PrivacyRpc.listRetentionRuns.subject)
  listRuns(@Payload() req: RpcRequest) {
    requireCompliance(actorOf(req));
    const { status, dryRun, limit, cursor } = parseRpcInput(PrivacyRpc.listRetentionRuns.input, req.input, 'query');
    return this.runs.list({ status, dryRun: dryRun === undefined ? undefined : dryRun === 'true' }, limit, cursor);
  }

  @MessagePattern(PrivacyRpc.decide.subject)
  decide(@Payload() req: RpcRequest) {
    const actor = requireCompliance(actorOf(req));
    return this.decisions.decide(actor, parseRpcInput(PrivacyRpc.decide.input, req.input));
  }

  @MessagePattern(PrivacyRpc.createLegalHold.subject)
  createHold(@Payload() req: RpcRequest) {
    const actor = requireCompliance(actorOf(req));
    return this.holds.create(actor, parseRpcInput(PrivacyRpc.createLegalHold.input, req.input));
  }

  @MessagePattern(PrivacyRpc.releaseLegalHold.subject)
  releaseHold(@Payload() req: RpcRequest) {
    const actor = requireCompliance(actorOf(req));
    return this.holds.release(actor, parseRpcInput(PrivacyRpc.releaseLegalHold.input, req.input, 'path').id);
  }

  /** Not an admin RPC: chat asks before a deletion whether a hold keeps the caller's data, or its author's. */
  @MessagePattern(PrivacyRpc.ownHold.subject)
  async ownHold(@Payload() req: RpcRequest) {
    const { authorId } = parseRpcInput(PrivacyRpc.ownHold.input, req.input ?? {});
    return { held: await this.holds.isHeld(authorId ?? actorOf(req).userId) };
  }

  @MessagePattern(PrivacyRpc.listLegalHolds.subject)
  async listHolds(@Payload() req: RpcRequest) {
    requireCompliance(actorOf(req));
    const { active, limit, cursor } = parseRpcInput(PrivacyRpc.listLegalHolds.input, req.input, 'query');
    return this.holds.list(active === undefined ? undefined : active === 'true', limit, cursor);
  }

  @MessagePattern(PrivacyRpc.processingActivities.subject)
  async processingActivities(@Payload() req: RpcRequest) {
    requireCompliance(actorOf(req));
    const { format } = parseRpcInput(PrivacyRpc.processingActivities.input, req.input, 'query');
    return format === 'csv' ? { csv: await this.register.csv() } : this.register.register();
  }
}
