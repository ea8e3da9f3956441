import { Controller } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { parseRpcInput, privacyRpcs, subjectExistsRpc, type RpcRequest } from '@ally/contracts';
import { IdentityPrivacyService } from './identity-privacy.service.js';

const IdentityPrivacyRpc = privacyRpcs('identity');

@Controller()
export class IdentityPrivacyController {
  constructor(private readonly privacy: IdentityPrivacyService) {}

  @MessagePattern(IdentityPrivacyRpc.export.subject)
  async export(@Payload() req: RpcRequest) {
    const { userId, scope, page } = parseRpcInput(IdentityPrivacyRpc.export.input, req.input);
    return this.privacy.export(userId, scope, page);
  }

  @MessagePattern(subjectExistsRpc.subject)
  async subject(@Payload() req: RpcRequest) {
    return { exists: await this.privacy.exists(parseRpcInput(subjectExistsRpc.input, req.input).userId) };
  }

  @MessagePattern(IdentityPrivacyRpc.erase.subject)
  erase(@Payload() req: RpcRequest) {
    const { userId, scope } = parseRpcInput(IdentityPrivacyRpc.erase.input, req.input);
    return this.privacy.erase(userId, scope);
  }
}
