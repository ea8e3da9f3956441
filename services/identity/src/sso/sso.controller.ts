import { Controller } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { IdentityRpc, parseRpcInput, type RpcRequest } from '@ally/contracts';
import { SsoService } from './sso.service.js';

@Controller()
export class SsoController {
  constructor(private readonly sso: SsoService) {}

  @MessagePattern(IdentityRpc.ssoStart.subject)
  start(@Payload() req: RpcRequest) {
    return this.sso.start(parseRpcInput(IdentityRpc.ssoStart.input, req.input, 'path parameter').provider);
  }

  @MessagePattern(IdentityRpc.ssoCallback.subject)
  callback(@Payload() req: RpcRequest) {
    const { provider, callbackUrl, browserState } = parseRpcInput(IdentityRpc.ssoCallback.input, req.input, 'path parameter');
    return this.sso.callback(provider, callbackUrl, req.meta, browserState);
  }
}
