import { Inject, Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { errors as joseErrors, jwtVerify } from 'jose';
import { apiKeyVerifyInput, IdentityRpc, ProblemError, type Actor } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config.js';
import { bearerToken } from './bearer.js';
import { API_KEY_ALLOWED, LIVE_ACCOUNT_REQUIRED } from './credential-scope.js';
import { JwksCache } from './jwks-cache.service.js';
import { SessionLiveness } from './session-liveness.js';
import { credentialProven, credentialRefused } from './rate-limits.js';
import { VerifiedTokenCache } from './verified-token-cache.js';
import { IS_PUBLIC } from '@ally/platform';

export interface AuthenticatedRequest {
  actor?: Actor;
  headers: Record<string, string | string[] | undefined>;
}

/**
 * `Authorization: Bearer <access JWT>` is verified here, locally, against the
 * cached JWKS; `Bearer ally_…` API keys are checked by identity (they can be
 * revoked at any moment).
 */
@Injectable()
export class AuthGuard implements CanActivate {
  /** Tokens already verified in full; see VerifiedTokenCache for why a hit answers the same. */
  private readonly verified = new VerifiedTokenCache();

  constructor(
    private readonly reflector: Reflector,
    private readonly jwks: JwksCache,
    private readonly rpc: RpcClient,
    private readonly sessions: SessionLiveness,
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    if (context.getType() !== 'http') return true;
    const req = context.switchToHttp().getRequest<AuthenticatedRequest>();
    const isPublic = this.reflector.getAllAndOverride<boolean>(IS_PUBLIC, [context.getHandler(), context.getClass()]);
    // Public routes ignore credentials: a client that sends its (perhaps expired)
    // token with every request must still be able to sign in and refresh.
    if (isPublic) return true;
    const header = req.headers.authorization;
    if (typeof header !== 'string' || !header) throw new ProblemError(401, 'Authentication required: send Authorization: Bearer <token>');
    // Also refused: anything after the token ("Bearer <key> extra" was taken as the key).
    const token = bearerToken(header);
    if (!token) throw new ProblemError(401, 'The Authorization header must be "Bearer <token>", the token without spaces (an API key or access token has none)');
    const byKey = token.startsWith('ally_');
    const actor = await (byKey ? this.fromApiKey(token) : this.fromJwt(token)).catch((err: unknown) => {
      // Refused now (revoked, ended): its requests count by their IP again, not in the bucket of whose it was.
      if (err instanceof ProblemError && err.status === 401) credentialRefused(token);
      throw err;
    });
    const targets = [context.getHandler(), context.getClass()];
    if (byKey && !this.reflector.getAllAndOverride<boolean>(API_KEY_ALLOWED, targets)) {
      throw new ProblemError(403, 'An API key serves chat in its workspace and reading the account (GET /v1/me) only; sign in to manage the account, organisations, billing or data-subject requests');
    }
    // identity answers 401 for an account that no longer exists (an API key it has just verified is live).
    if (!byKey && this.reflector.getAllAndOverride<boolean>(LIVE_ACCOUNT_REQUIRED, targets)) await this.rpc.call(IdentityRpc.getMe, {}, { actor });
    req.actor = actor;
    credentialProven(token, actor.userId);
    return true;
  }

  /** The signature, then whether the session it names still runs (a logout ends its tokens too). */
  private async fromJwt(token: string): Promise<Actor> {
    const { actor, sessionId, exp } = await this.verify(token);
    // identity names the session in every token it signs: one without cannot be ended, so it is not one of ours.
    if (!sessionId) throw new ProblemError(401, 'The access token is invalid');
    await this.sessions.assertLive(sessionId, exp);
    return actor;
  }

  private async verify(token: string): Promise<{ actor: Actor; sessionId?: string; exp?: number }> {
    const keysVersion = this.jwks.version;
    const cached = this.verified.get(token, keysVersion);
    if (cached) return cached;
    try {
      const { payload } = await jwtVerify(token, this.jwks.getKey, {
        issuer: this.config.JWT_ISSUER,
        audience: this.config.JWT_AUDIENCE,
        algorithms: ['EdDSA'],
        typ: 'at+jwt',
      });
      const roles = Array.isArray(payload.roles) ? payload.roles.filter((r): r is 'compliance' | 'admin' => r === 'compliance' || r === 'admin') : [];
      const sessionId = typeof payload.sid === 'string' ? payload.sid : undefined;
      const actor: Actor = { userId: String(payload.sub), platformRoles: roles, ...(sessionId ? { sessionId } : {}) };
      // Cached only if the key set did not change while we verified (a refresh may have replaced it).
      if (this.jwks.version === keysVersion) this.verified.set(token, keysVersion, actor, { exp: payload.exp, nbf: payload.nbf, sid: sessionId });
      return { actor, sessionId, exp: payload.exp };
    } catch (err) {
      if (err instanceof ProblemError) throw err;
      const expired = err instanceof joseErrors.JWTExpired;
      throw new ProblemError(401, expired ? 'The access token has expired; refresh it' : 'The access token is invalid');
    }
  }

  private async fromApiKey(key: string): Promise<Actor> {
    // A key identity would refuse as malformed (e.g. too long) is just as invalid: a 401, not a 400 about a body.
    if (!apiKeyVerifyInput.safeParse({ key }).success) throw new ProblemError(401, 'The API key is invalid or revoked');
    const identity = await this.rpc.call(IdentityRpc.verifyApiKey, { key });
    return { userId: identity.userId, apiKeyWorkspace: identity.workspace, platformRoles: identity.platformRoles };
  }
}
