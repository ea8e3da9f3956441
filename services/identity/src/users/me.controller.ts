import { Controller } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { actorOf, IdentityRpc, parseRpcInput, type RpcRequest } from '@ally/contracts';
import { MeService } from './me.service.js';

@Controller()
export class MeController {
  constructor(private readonly me: MeService) {}

  @MessagePattern(IdentityRpc.getMe.subject)
  get(@Payload() req: RpcRequest) {
    return this.me.get(actorOf(req).userId);
  }

  @MessagePattern(IdentityRpc.getRouting.subject)
  routing(@Payload() req: RpcRequest) {
    return this.me.routing(actorOf(req).userId);
  }

  @MessagePattern(IdentityRpc.updateMe.subject)
  update(@Payload() req: RpcRequest) {
    return this.me.update(actorOf(req).userId, parseRpcInput(IdentityRpc.updateMe.input, req.input));
  }

  @MessagePattern(IdentityRpc.changeEmail.subject)
  changeEmail(@Payload() req: RpcRequest) {
    return this.me.requestEmailChange(actorOf(req), parseRpcInput(IdentityRpc.changeEmail.input, req.input), req.meta);
  }

  @MessagePattern(IdentityRpc.updateSettings.subject)
  updateSettings(@Payload() req: RpcRequest) {
    return this.me.updateSettings(actorOf(req), parseRpcInput(IdentityRpc.updateSettings.input, req.input));
  }
}
