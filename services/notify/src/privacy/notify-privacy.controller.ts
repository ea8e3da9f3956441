import { Controller } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { parseRpcInput, privacyRpcs, type RpcRequest } from '@ally/contracts';
import { NotifyPrivacyService } from './notify-privacy.service.js';

const NotifyPrivacyRpc = privacyRpcs('notify');

@Controller()
export class NotifyPrivacyController {
  constructor(private readonly privacy: NotifyPrivacyService) {}

  @MessagePattern(NotifyPrivacyRpc.export.subject)
  async export(@Payload() req: RpcRequest) {
    const { userId, scope, page } = parseRpcInput(NotifyPrivacyRpc.export.input, req.input);
    return this.privacy.export(userId, scope, page);
  }

  @MessagePattern(NotifyPrivacyRpc.erase.subject)
  erase(@Payload() req: RpcRequest) {
    const { userId, scope } = parseRpcInput(NotifyPrivacyRpc.erase.input, req.input);
    return this.privacy.erase(userId, scope);
  }
}
