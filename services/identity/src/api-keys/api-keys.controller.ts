import { Controller } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { actorOf, IdentityRpc, parseRpcInput, type RpcRequest } from '@ally/contracts';
import { ApiKeysService } from './api-keys.service.js';

@Controller()
export class ApiKeysController {
  constructor(private readonly keys: ApiKeysService) {}

  @MessagePattern(IdentityRpc.createApiKey.subject)
  create(@Payload() req: RpcRequest) {
    return this.keys.create(actorOf(req), parseRpcInput(IdentityRpc.createApiKey.input, req.input));
  }

  @MessagePattern(IdentityRpc.listApiKeys.subject)
  list(@Payload() req: RpcRequest) {
    const { limit, cursor } = parseRpcInput(IdentityRpc.listApiKeys.input, req.input, 'query');
    return this.keys.list(actorOf(req), limit, cursor);
  }

  @MessagePattern(IdentityRpc.revokeApiKey.subject)
  async revoke(@Payload() req: RpcRequest) {
    await this.keys.revoke(actorOf(req), parseRpcInput(IdentityRpc.revokeApiKey.input, req.input).id);
    return null;
  }

  @MessagePattern(IdentityRpc.verifyApiKey.subject)
  verify(@Payload() req: RpcRequest) {
    return this.keys.verify(parseRpcInput(IdentityRpc.verifyApiKey.input, req.input).key);
  }
}
