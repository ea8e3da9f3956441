import { Controller } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { actorOf, IdentityRpc, type RpcRequest } from '@ally/contracts';
import { PlatformRolesService } from './platform-roles.service.js';

@Controller()
export class PlatformRolesController {
  constructor(private readonly roles: PlatformRolesService) {}

  @MessagePattern(IdentityRpc.platformRoles.subject)
  async current(@Payload() req: RpcRequest) {
    return { platformRoles: await this.roles.current(actorOf(req).userId) };
  }
}
