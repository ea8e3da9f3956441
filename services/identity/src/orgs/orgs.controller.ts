import { Controller } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { actorOf, IdentityRpc, parseRpcInput, type RpcRequest } from '@ally/contracts';
import { OrgsService } from './orgs.service.js';

@Controller()
export class OrgsController {
  constructor(private readonly orgs: OrgsService) {}

  @MessagePattern(IdentityRpc.createOrg.subject)
  create(@Payload() req: RpcRequest) {
    return this.orgs.create(actorOf(req), parseRpcInput(IdentityRpc.createOrg.input, req.input).name, req.meta);
  }

  @MessagePattern(IdentityRpc.getOrg.subject)
  get(@Payload() req: RpcRequest) {
    return this.orgs.get(actorOf(req), parseRpcInput(IdentityRpc.getOrg.input, req.input).orgId);
  }

  @MessagePattern(IdentityRpc.listMembers.subject)
  members(@Payload() req: RpcRequest) {
    const { orgId, limit, cursor } = parseRpcInput(IdentityRpc.listMembers.input, req.input, 'query');
    return this.orgs.members(actorOf(req), orgId, limit, cursor);
  }

  @MessagePattern(IdentityRpc.createInvitation.subject)
  invite(@Payload() req: RpcRequest) {
    return this.orgs.invite(actorOf(req), parseRpcInput(IdentityRpc.createInvitation.input, req.input));
  }

  @MessagePattern(IdentityRpc.acceptInvitation.subject)
  accept(@Payload() req: RpcRequest) {
    return this.orgs.accept(actorOf(req), parseRpcInput(IdentityRpc.acceptInvitation.input, req.input).token);
  }

  @MessagePattern(IdentityRpc.listInvitations.subject)
  invitations(@Payload() req: RpcRequest) {
    const { orgId, limit, cursor } = parseRpcInput(IdentityRpc.listInvitations.input, req.input, 'query');
    return this.orgs.invitations(actorOf(req), orgId, limit, cursor);
  }

  @MessagePattern(IdentityRpc.revokeInvitation.subject)
  async revokeInvitation(@Payload() req: RpcRequest) {
    const { orgId, invitationId } = parseRpcInput(IdentityRpc.revokeInvitation.input, req.input);
    await this.orgs.revokeInvitation(actorOf(req), orgId, invitationId);
    return null;
  }

  @MessagePattern(IdentityRpc.removeMember.subject)
  async remove(@Payload() req: RpcRequest) {
    const { orgId, userId } = parseRpcInput(IdentityRpc.removeMember.input, req.input);
    await this.orgs.removeMember(actorOf(req), orgId, userId);
    return null;
  }

  @MessagePattern(IdentityRpc.updateOrgPolicy.subject)
  policy(@Payload() req: RpcRequest) {
    return this.orgs.updatePolicy(actorOf(req), parseRpcInput(IdentityRpc.updateOrgPolicy.input, req.input));
  }
}
