import { Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { IdentityRpc, ProblemError } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import type { AuthenticatedRequest } from '../auth/auth.guard.js';

/**
 * `/v1/admin/privacy/*`: the `compliance` platform role or 403 (runs after
 * AuthGuard, so there is an actor), by identity's word of now, not the
 * token's: a role revoked from the CLI ends at once, and one granted counts
 * at once, not when the access token is next renewed (these routes read
 * everyone's requests, hold and release data, and start deletions).
 */
@Injectable()
export class ComplianceGuard implements CanActivate {
  constructor(private readonly rpc: RpcClient) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const actor = context.switchToHttp().getRequest<AuthenticatedRequest>().actor;
    if (!actor) throw new ProblemError(401, 'Authentication required');
    const refused = () => new ProblemError(403, 'This needs the compliance role');
    // An API key never carries a platform role: it is for chat, not for administration.
    if (actor.apiKeyWorkspace) throw refused();
    const { platformRoles } = await this.rpc.call(IdentityRpc.platformRoles, {}, { actor });
    if (!platformRoles.includes('compliance')) throw refused();
    // A role granted since the token was issued counts from now, as a revoked one ends now.
    actor.platformRoles = platformRoles;
    return true;
  }
}
