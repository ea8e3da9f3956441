import { Controller } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { IdentityRpc, parseRpcInput, type RpcRequest } from '@ally/contracts';
import { SessionsService } from '../sessions/sessions.service.js';
import { AuthService } from './auth.service.js';

@Controller()
export class AuthController {
  constructor(
    private readonly auth: AuthService,
    private readonly sessions: SessionsService,
  ) {}

  @MessagePattern(IdentityRpc.register.subject)
  register(@Payload() req: RpcRequest) {
    return this.auth.register(parseRpcInput(IdentityRpc.register.input, req.input), req.meta);
  }

  @MessagePattern(IdentityRpc.verifyEmail.subject)
  async verifyEmail(@Payload() req: RpcRequest) {
    await this.auth.verifyEmail(parseRpcInput(IdentityRpc.verifyEmail.input, req.input).token);
    return null;
  }

  @MessagePattern(IdentityRpc.login.subject)
  login(@Payload() req: RpcRequest) {
    const { email, password } = parseRpcInput(IdentityRpc.login.input, req.input);
    return this.auth.login(email, password, req.meta);
  }

  @MessagePattern(IdentityRpc.checkSession.subject)
  async checkSession(@Payload() req: RpcRequest) {
    return { live: await this.sessions.isLive(parseRpcInput(IdentityRpc.checkSession.input, req.input).sessionId) };
  }

  @MessagePattern(IdentityRpc.refresh.subject)
  refresh(@Payload() req: RpcRequest) {
    return this.sessions.refresh(parseRpcInput(IdentityRpc.refresh.input, req.input).refreshToken);
  }

  @MessagePattern(IdentityRpc.logout.subject)
  async logout(@Payload() req: RpcRequest) {
    await this.sessions.logout(parseRpcInput(IdentityRpc.logout.input, req.input).refreshToken);
    return null;
  }

  @MessagePattern(IdentityRpc.forgotPassword.subject)
  async forgot(@Payload() req: RpcRequest) {
    await this.auth.forgotPassword(parseRpcInput(IdentityRpc.forgotPassword.input, req.input).email, req.meta);
    return null;
  }

  @MessagePattern(IdentityRpc.resetPassword.subject)
  async reset(@Payload() req: RpcRequest) {
    const { token, password } = parseRpcInput(IdentityRpc.resetPassword.input, req.input);
    await this.auth.resetPassword(token, password);
    return null;
  }
}
