import { Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { IdentityRpc, ProblemError } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import type { AuthenticatedRequest } from '../auth/auth.guard.js';

/**
 * `/v1/admin/privacy/*`: the `compliance` platform role or 403 (runs after
 * AuthGuard, so there is an actor). The token's claim is checked first, then
 * identity's word of now: a role revoked from the CLI ends at once, not when
 * the access token expires (these routes read everyone's requests, hold and
 * release data, and start deletions).
 */
@Injectable()
export class ComplianceGuard implements CanActivate {
  constructor(private readonly rpc: RpcClient) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const actor = context.switchToHttp().getRequest<AuthenticatedRequest>().actor;
    if (!actor) throw new ProblemError(401, 'Authentication required');
    const refused = () => new ProblemError(403, 'This needs the compliance role');
    if (!actor.platformRoles.includes('compliance')) throw refused();
    const { platformRoles } = await this.rpc.call(IdentityRpc.platformRoles, {}, { actor });
    if (!platformRoles.includes('compliance')) throw refused();
    return true;
  }
}
