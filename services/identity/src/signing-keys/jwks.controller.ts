import { Controller } from '@nestjs/common';
import { MessagePattern } from '@nestjs/microservices';
import { IdentityRpc } from '@ally/contracts';
import { SigningKeysService } from './signing-keys.service.js';

@Controller()
export class JwksController {
  constructor(private readonly keys: SigningKeysService) {}

  /** The gateway fetches this once and again only when it meets an unknown key id. */
  @MessagePattern(IdentityRpc.jwks.subject)
  jwks() {
    return this.keys.jwks();
  }
}
