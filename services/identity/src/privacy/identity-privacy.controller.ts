import { Controller } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { parseInput, privacyRpcs, subjectExistsRpc, type RpcRequest } from '@ally/contracts';
import { IdentityPrivacyService } from './identity-privacy.service.js';

const IdentityPrivacyRpc = privacyRpcs('identity');

@Controller()
export class IdentityPrivacyController {
  constructor(private readonly privacy: IdentityPrivacyService) {}

  @MessagePattern(IdentityPrivacyRpc.export.subject)
  export(@Payload() req: RpcRequest) {
    const { userId, scope } = parseInput(IdentityPrivacyRpc.export.input, req.input);
    return this.privacy.export(userId, scope);
  }

  @MessagePattern(subjectExistsRpc.subject)
  async subject(@Payload() req: RpcRequest) {
    return { exists: await this.privacy.exists(parseInput(subjectExistsRpc.input, req.input).userId) };
  }

  @MessagePattern(IdentityPrivacyRpc.erase.subject)
  erase(@Payload() req: RpcRequest) {
    const { userId, scope } = parseInput(IdentityPrivacyRpc.erase.input, req.input);
    return this.privacy.erase(userId, scope);
  }
}
