import { Controller, Get, Header, Headers, HttpCode, Inject, Param, Post, Req, Res } from '@nestjs/common';
import { ApiHeader, ApiResponse, ApiTags } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import {
  forgotPasswordInput,
  IdentityRpc,
  loginInput,
  logoutInput,
  refreshInput,
  registerInput,
  resetPasswordInput,
  verifyEmailInput,
  type RequestMeta,
} from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { Public } from '@ally/platform';
import { AuthRateLimited } from '../auth/rate-limits.js';
import { RequestMetaParam } from '../common/request-context.js';
import { BodySchema, ValidBody } from '../common/zod-body.js';
import { JwksCache } from '../auth/jwks-cache.service.js';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config.js';
import { z } from 'zod';
import { Answers } from '../common/answers.js';
import { rememberSsoAttempt, spendSsoAttempt } from './sso-browser.js';

/** Answers that carry tokens are stored by no cache, nor a browser's history (RFC 6749 §5.1). */
const TOKENS_UNCACHED = 'no-store';

@ApiTags('auth')
@Controller()
@Public()
export class AuthController {
  constructor(
    private readonly rpc: RpcClient,
    private readonly jwks: JwksCache,
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
  ) {}

  @Post('v1/auth/register')
  @Answers(IdentityRpc.register, 201)
  @Header('cache-control', TOKENS_UNCACHED)
  @ApiHeader({ name: 'accept-language', required: false, description: "the mails' language when the body names no locale (de or en)" })
  @AuthRateLimited()
  @BodySchema(registerInput)
  register(@ValidBody(registerInput) body: unknown, @RequestMetaParam() meta: RequestMeta, @Headers('accept-language') acceptLanguage?: string) {
    // Without a locale in the body, identity falls back to the browser's language.
    return this.rpc.call(IdentityRpc.register, body as any, { meta: { ...meta, acceptLanguage: acceptLanguage?.slice(0, 200) } });
  }

  @Post('v1/auth/verify-email')
  @HttpCode(204)
  @AuthRateLimited()
  @BodySchema(verifyEmailInput)
  async verifyEmail(@ValidBody(verifyEmailInput) body: unknown, @RequestMetaParam() meta: RequestMeta) {
    await this.rpc.call(IdentityRpc.verifyEmail, body as any, { meta });
  }

  @Post('v1/auth/login')
  @Answers(IdentityRpc.login)
  @Header('cache-control', TOKENS_UNCACHED)
  @HttpCode(200)
  @AuthRateLimited()
  @BodySchema(loginInput)
  login(@ValidBody(loginInput) body: unknown, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(IdentityRpc.login, body as any, { meta });
  }

  @Post('v1/auth/refresh')
  @Answers(IdentityRpc.refresh)
  @Header('cache-control', TOKENS_UNCACHED)
  @HttpCode(200)
  @BodySchema(refreshInput)
  refresh(@ValidBody(refreshInput) body: unknown, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(IdentityRpc.refresh, body as any, { meta });
  }

  @Post('v1/auth/logout')
  @HttpCode(204)
  @BodySchema(logoutInput)
  async logout(@ValidBody(logoutInput) body: unknown, @RequestMetaParam() meta: RequestMeta) {
    await this.rpc.call(IdentityRpc.logout, body as any, { meta });
  }

  @Post('v1/auth/password/forgot')
  @HttpCode(202)
  @Answers(z.strictObject({ status: z.literal('accepted') }), 202, 'Accepted, whether or not the address has an account')
  @AuthRateLimited()
  @BodySchema(forgotPasswordInput)
  async forgot(@ValidBody(forgotPasswordInput) body: unknown, @RequestMetaParam() meta: RequestMeta) {
    await this.rpc.call(IdentityRpc.forgotPassword, body as any, { meta });
    return { status: 'accepted' };
  }

  @Post('v1/auth/password/reset')
  @HttpCode(204)
  @AuthRateLimited()
  @BodySchema(resetPasswordInput)
  async reset(@ValidBody(resetPasswordInput) body: unknown, @RequestMetaParam() meta: RequestMeta) {
    await this.rpc.call(IdentityRpc.resetPassword, body as any, { meta });
  }

  /** Redirects the browser to the identity provider. A credential route: each start keeps a row at identity. */
  @Get('v1/auth/sso/:provider/start')
  @AuthRateLimited()
  @ApiResponse({ status: 302, description: "to the identity provider's sign-in page" })
  async ssoStart(@Param('provider') provider: string, @RequestMetaParam() meta: RequestMeta, @Res() reply: FastifyReply) {
    const { authorizationUrl } = await this.rpc.call(IdentityRpc.ssoStart, { provider }, { meta });
    rememberSsoAttempt(reply, provider, authorizationUrl, this.config.PUBLIC_BASE_URL);
    reply.status(302).header('location', authorizationUrl).send();
  }

  /** The provider redirects back here, to the browser that started the sign-in; answers the token pair. */
  @Get('v1/auth/sso/:provider/callback')
  @AuthRateLimited()
  @Answers(IdentityRpc.ssoCallback)
  @Header('cache-control', TOKENS_UNCACHED)
  ssoCallback(@Param('provider') provider: string, @Req() req: FastifyRequest, @Res({ passthrough: true }) reply: FastifyReply, @RequestMetaParam() meta: RequestMeta) {
    const browserState = spendSsoAttempt(req, reply, provider, this.config.PUBLIC_BASE_URL);
    // The URL the provider redirected to, as registered there: public base + path + query.
    const callbackUrl = new URL(req.url, this.config.PUBLIC_BASE_URL);
    return this.rpc.call(IdentityRpc.ssoCallback, { provider, callbackUrl: callbackUrl.href, browserState }, { meta });
  }

  @Get('.well-known/jwks.json')
  @Answers(IdentityRpc.jwks)
  jwksDocument() {
    return this.jwks.current();
  }
}
