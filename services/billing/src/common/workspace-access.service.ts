import { Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { IdentityRpc, managesOrg, ProblemError, type Actor } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { lockSubject } from '@ally/persistence';
import { isErased, Pseudonyms } from './erased-subjects.js';
import { workspaceKey } from './workspace-key.js';

/**
 * Who may see and change a workspace's billing: the user for their private
 * workspace, an organisation's owners and admins for its business workspace
 * (asked of identity; members get 403, strangers 404).
 */
@Injectable()
export class WorkspaceAccess {
  constructor(
    private readonly rpc: RpcClient,
    private readonly ds: DataSource,
    private readonly pseudonyms: Pseudonyms,
  ) {}

  /** Also refuses (410) a subject billing already erased, whose account identity has not deleted yet. */
  async manage(actor: Actor, workspace: string): Promise<string> {
    if (await isErased(this.ds, this.pseudonyms.of(actor.userId))) throw new ProblemError(410, 'This account is being erased');
    if (workspace === 'private') return workspaceKey(workspace, actor.userId);
    const org = await this.rpc.call(IdentityRpc.getOrg, { orgId: workspace }, { actor: { userId: actor.userId, platformRoles: [] } });
    if (!managesOrg(org.role)) throw new ProblemError(403, 'Only owners and admins manage billing');
    return workspace;
  }

  /**
   * For writing something that names the actor: holds off their erasure (which takes the lock exclusively) until
   * `em`'s transaction ends, and refuses (410) if one committed since `manage` let them in.
   */
  async holdAgainstErasure(em: EntityManager, actor: Actor): Promise<void> {
    await lockSubject(em, actor.userId, 'shared');
    if (await isErased(em, this.pseudonyms.of(actor.userId))) throw new ProblemError(410, 'This account is being erased');
  }

  /** Whether `userId` (someone other than the caller) belongs to the organisation: identity answers 404 for a stranger. */
  async isMember(orgId: string, userId: string): Promise<boolean> {
    try {
      await this.rpc.call(IdentityRpc.getOrg, { orgId }, { actor: { userId, platformRoles: [] } });
      return true;
    } catch (err) {
      if (err instanceof ProblemError && err.status === 404) return false;
      throw err;
    }
  }

  /** Reading usage: any member of the workspace. */
  async read(actor: Actor, workspace: string): Promise<string> {
    if (workspace === 'private') return workspaceKey(workspace, actor.userId);
    await this.rpc.call(IdentityRpc.getOrg, { orgId: workspace }, { actor: { userId: actor.userId, platformRoles: [] } });
    return workspace;
  }
}
