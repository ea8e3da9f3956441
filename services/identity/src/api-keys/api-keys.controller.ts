import { Controller } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { actorOf, IdentityRpc, parseInput, type RpcRequest } from '@ally/contracts';
import { ApiKeysService } from './api-keys.service.js';

@Controller()
export class ApiKeysController {
  constructor(private readonly keys: ApiKeysService) {}

  @MessagePattern(IdentityRpc.createApiKey.subject)
  create(@Payload() req: RpcRequest) {
    return this.keys.create(actorOf(req), parseInput(IdentityRpc.createApiKey.input, req.input));
  }

  @MessagePattern(IdentityRpc.listApiKeys.subject)
  list(@Payload() req: RpcRequest) {
    const { limit, cursor } = parseInput(IdentityRpc.listApiKeys.input, req.input, 'query');
    return this.keys.list(actorOf(req), limit, cursor);
  }

  @MessagePattern(IdentityRpc.revokeApiKey.subject)
  async revoke(@Payload() req: RpcRequest) {
    await this.keys.revoke(actorOf(req), parseInput(IdentityRpc.revokeApiKey.input, req.input).id);
    return null;
  }

  @MessagePattern(IdentityRpc.verifyApiKey.subject)
  verify(@Payload() req: RpcRequest) {
    return this.keys.verify(parseInput(IdentityRpc.verifyApiKey.input, req.input).key);
  }
}
