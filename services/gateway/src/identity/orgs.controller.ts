import { Controller, Delete, Get, HttpCode, Patch, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import type { z } from 'zod';
import { acceptInvitationInput, createOrgInput, IdentityRpc, invitationBody, listInvitationsInput, listMembersInput, orgPolicyBody, parseInput, type Actor, type RequestMeta } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { ChatPolicySync } from '../chat/policy-sync.service.js';
import { CurrentActor, RequestMetaParam } from '../common/request-context.js';
import { UuidParam } from '../common/path-param.js';
import { BodySchema, ValidBody } from '../common/zod-body.js';
import { QuerySchema } from '../common/query-schema.js';
import { Answers } from '../common/answers.js';

@ApiTags('organisations')
@ApiBearerAuth()
@Controller()
export class OrgsController {
  constructor(
    private readonly rpc: RpcClient,
    private readonly chatPolicy: ChatPolicySync,
  ) {}

  @Post('v1/orgs')
  @Answers(IdentityRpc.createOrg, 201)
  @BodySchema(createOrgInput)
  create(@ValidBody(createOrgInput) body: unknown, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(IdentityRpc.createOrg, body as any, { actor, meta });
  }

  @Get('v1/orgs/:orgId')
  @Answers(IdentityRpc.getOrg)
  get(@UuidParam('orgId') orgId: string, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(IdentityRpc.getOrg, { orgId }, { actor, meta });
  }

  @Get('v1/orgs/:orgId/members')
  @Answers(IdentityRpc.listMembers)
  @QuerySchema(listMembersInput, { omit: ['orgId'] })
  members(@UuidParam('orgId') orgId: string, @Query() query: object, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(IdentityRpc.listMembers, parseInput(listMembersInput, { ...query, orgId }, 'query'), { actor, meta });
  }

  @Post('v1/orgs/:orgId/invitations')
  @Answers(IdentityRpc.createInvitation, 201)
  @BodySchema(invitationBody)
  invite(
    @UuidParam('orgId') orgId: string,
    @ValidBody(invitationBody) body: z.infer<typeof invitationBody>,
    @CurrentActor() actor: Actor,
    @RequestMetaParam() meta: RequestMeta,
  ) {
    return this.rpc.call(IdentityRpc.createInvitation, { orgId, ...body }, { actor, meta });
  }

  /** Invitations still open, newest first (owners and admins). */
  @Get('v1/orgs/:orgId/invitations')
  @Answers(IdentityRpc.listInvitations)
  @QuerySchema(listInvitationsInput, { omit: ['orgId'] })
  invitations(@UuidParam('orgId') orgId: string, @Query() query: Record<string, unknown>, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(IdentityRpc.listInvitations, parseInput(listInvitationsInput, { ...query, orgId }, 'query'), { actor, meta });
  }

  /** Takes back an invitation nobody accepted yet: its link stops working (owners and admins). */
  @Delete('v1/orgs/:orgId/invitations/:invitationId')
  @HttpCode(204)
  async revokeInvitation(@UuidParam('orgId') orgId: string, @UuidParam('invitationId') invitationId: string, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    await this.rpc.call(IdentityRpc.revokeInvitation, { orgId, invitationId }, { actor, meta });
  }

  @Post('v1/invitations/accept')
  @Answers(IdentityRpc.acceptInvitation)
  @HttpCode(200)
  @BodySchema(acceptInvitationInput)
  async accept(@ValidBody(acceptInvitationInput) body: unknown, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    const membership = await this.rpc.call(IdentityRpc.acceptInvitation, body as any, { actor, meta });
    // The new member's first request to the organisation's chat finds them a member.
    await this.chatPolicy.afterChange(actor, meta);
    return membership;
  }

  @Delete('v1/orgs/:orgId/members/:userId')
  @HttpCode(204)
  async removeMember(
    @UuidParam('orgId') orgId: string,
    @UuidParam('userId') userId: string,
    @CurrentActor() actor: Actor,
    @RequestMetaParam() meta: RequestMeta,
  ) {
    await this.rpc.call(IdentityRpc.removeMember, { orgId, userId }, { actor, meta });
    await this.chatPolicy.afterChange(actor, meta, orgId, userId);
  }

  @Patch('v1/orgs/:orgId/policy')
  @Answers(IdentityRpc.updateOrgPolicy)
  @BodySchema(orgPolicyBody)
  async policy(
    @UuidParam('orgId') orgId: string,
    @ValidBody(orgPolicyBody) body: z.infer<typeof orgPolicyBody>,
    @CurrentActor() actor: Actor,
    @RequestMetaParam() meta: RequestMeta,
  ) {
    await this.chatPolicy.assertKnownModels(actor, meta, orgId, body.allowedModels);
    const policy = await this.rpc.call(IdentityRpc.updateOrgPolicy, { orgId, ...body }, { actor, meta });
    await this.chatPolicy.afterChange(actor, meta, orgId);
    return policy;
  }
}
