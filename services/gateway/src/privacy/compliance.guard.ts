import { Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { ProblemError } from '@ally/contracts';
import type { AuthenticatedRequest } from '../auth/auth.guard.js';

/** `/v1/admin/privacy/*`: the `compliance` platform role or 403 (runs after AuthGuard, so there is an actor). */
@Injectable()
export class ComplianceGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const actor = context.switchToHttp().getRequest<AuthenticatedRequest>().actor;
    if (!actor) throw new ProblemError(401, 'Authentication required');
    if (!actor.platformRoles.includes('compliance')) throw new ProblemError(403, 'This needs the compliance role');
    return true;
  }
}
