import { Controller, Delete, Get, HttpCode, Patch, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { changeEmailInput, createApiKeyInput, IdentityRpc, listApiKeysInput, parseInput, updateMeInput, updateSettingsInput, type Actor, type RequestMeta } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { ChatPolicySync } from '../chat/policy-sync.service.js';
import { CurrentActor, RequestMetaParam } from '../common/request-context.js';
import { UuidParam } from '../common/path-param.js';
import { BodySchema, ValidBody } from '../common/zod-body.js';
import { ApiKeyAllowed } from '../auth/credential-scope.js';
import { AuthRateLimited } from '../auth/rate-limits.js';
import { QuerySchema } from '../common/query-schema.js';
import { Answers } from '../common/answers.js';

@ApiTags('me')
@ApiBearerAuth()
@Controller('v1/me')
export class MeController {
  constructor(
    private readonly rpc: RpcClient,
    private readonly chatPolicy: ChatPolicySync,
  ) {}

  @ApiKeyAllowed()
  @Get()
  @Answers(IdentityRpc.getMe)
  get(@CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(IdentityRpc.getMe, {}, { actor, meta });
  }

  @Patch()
  @Answers(IdentityRpc.updateMe)
  @BodySchema(updateMeInput)
  update(@ValidBody(updateMeInput) body: unknown, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(IdentityRpc.updateMe, body as any, { actor, meta });
  }

  /** Beyond API.md: the address is rectified too (Art. 16 GDPR), once the link mailed to the new one is followed (`POST /v1/auth/verify-email`). */
  @Post('email')
  // A password check (argon2) and a mail each: the strict per-IP limit of the credential routes.
  @AuthRateLimited()
  @HttpCode(202)
  @Answers(IdentityRpc.changeEmail, 202, 'A confirmation link went to the new address; the account moves to it when the link is followed')
  @BodySchema(changeEmailInput)
  changeEmail(@ValidBody(changeEmailInput) body: unknown, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(IdentityRpc.changeEmail, body as any, { actor, meta });
  }

  @Patch('settings')
  @Answers(IdentityRpc.updateSettings)
  @BodySchema(updateSettingsInput)
  async settings(@ValidBody(updateSettingsInput) body: unknown, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    const settings = await this.rpc.call(IdentityRpc.updateSettings, body as any, { actor, meta });
    await this.chatPolicy.afterChange(actor, meta);
    return settings;
  }

  @Post('api-keys')
  @Answers(IdentityRpc.createApiKey, 201)
  @BodySchema(createApiKeyInput)
  createApiKey(@ValidBody(createApiKeyInput) body: unknown, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(IdentityRpc.createApiKey, body as any, { actor, meta });
  }

  @Get('api-keys')
  @Answers(IdentityRpc.listApiKeys)
  @QuerySchema(listApiKeysInput)
  listApiKeys(@Query() query: unknown, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(IdentityRpc.listApiKeys, parseInput(listApiKeysInput, query, 'query'), { actor, meta });
  }

  @Delete('api-keys/:id')
  @HttpCode(204)
  async revokeApiKey(@UuidParam('id') id: string, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    await this.rpc.call(IdentityRpc.revokeApiKey, { id }, { actor, meta });
  }
}
