import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { IdentityRpc, ProblemError, type Actor } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';

export interface RoutingPolicy {
  workspace: string;
  /** The user's own setting (default on). */
  restrictToEu: boolean;
  /** The organisation enforces EU-only for its business workspace. */
  orgEuOnly: boolean;
  allowedModels: string[] | null;
  blockedTerms: string[];
  /** True when the route must stay in the EU, whoever decided it. */
  euOnly: boolean;
}

/**
 * The policy for one request, from chat's replica of identity's state. A user
 * or organisation the replica has not seen yet (older than the stream's
 * 7 days) is fetched from identity once and kept.
 */
@Injectable()
export class PolicyService {
  constructor(
    private readonly ds: DataSource,
    private readonly rpc: RpcClient,
  ) {}

  async resolve(actor: Actor, workspace: string): Promise<RoutingPolicy> {
    if (actor.apiKeyWorkspace && actor.apiKeyWorkspace !== workspace) {
      throw new ProblemError(403, `This API key is scoped to the workspace ${actor.apiKeyWorkspace}`);
    }
    const restricted = await this.ds.query(`SELECT 1 FROM restrictions WHERE user_id = $1 AND scope IN ('all', $2) LIMIT 1`, [actor.userId, workspace]);
    if (restricted.length) {
      throw new ProblemError(403, 'Processing of your data is restricted at your request (Art. 18 GDPR); chat is paused until the restriction is lifted', { type: 'https://ally.eu/problems/processing-restricted' });
    }
    const restrictToEu = await this.restrictToEu(actor);
    if (workspace === 'private') {
      return { workspace, restrictToEu, orgEuOnly: false, allowedModels: null, blockedTerms: [], euOnly: restrictToEu };
    }
    const member = await this.ds.query(`SELECT 1 FROM memberships WHERE org_id = $1 AND user_id = $2`, [workspace, actor.userId]);
    if (!member.length && !(await this.refreshMemberships(actor, workspace))) throw new ProblemError(404, 'Workspace not found');
    let [org] = await this.ds.query(`SELECT eu_only, allowed_models, blocked_terms FROM org_policies WHERE org_id = $1`, [workspace]);
    if (!org) org = await this.fetchOrgPolicy(actor, workspace);
    return {
      workspace,
      restrictToEu,
      orgEuOnly: org.eu_only,
      allowedModels: org.allowed_models,
      blockedTerms: org.blocked_terms ?? [],
      euOnly: restrictToEu || org.eu_only,
    };
  }

  /** The workspaces (`private` plus organisations) this user may use. */
  async isMember(actor: Actor, workspace: string): Promise<boolean> {
    if (workspace === 'private') return true;
    const rows = await this.ds.query(`SELECT 1 FROM memberships WHERE org_id = $1 AND user_id = $2`, [workspace, actor.userId]);
    return rows.length > 0 || this.refreshMemberships(actor, workspace);
  }

  private async restrictToEu(actor: Actor): Promise<boolean> {
    const [row] = await this.ds.query(`SELECT restrict_to_eu FROM user_settings WHERE user_id = $1`, [actor.userId]);
    if (row) return row.restrict_to_eu;
    await this.refreshMemberships(actor, 'private');
    const [fetched] = await this.ds.query(`SELECT restrict_to_eu FROM user_settings WHERE user_id = $1`, [actor.userId]);
    return fetched?.restrict_to_eu ?? true;
  }

  /** Pulls the user's settings and memberships from identity; answers whether `workspace` is among them. */
  private async refreshMemberships(actor: Actor, workspace: string): Promise<boolean> {
    const me = await this.rpc.call(IdentityRpc.getMe, {}, { actor: { userId: actor.userId, platformRoles: [] } }).catch(() => null);
    if (!me) return false;
    await this.ds.transaction(async (em) => {
      await em.query(`INSERT INTO user_settings (user_id, restrict_to_eu) VALUES ($1, $2) ON CONFLICT (user_id) DO NOTHING`, [me.id, me.settings.restrictToEu]);
      for (const m of me.memberships) {
        await em.query(`INSERT INTO memberships (org_id, user_id, role) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, [m.orgId, me.id, m.role]);
      }
    });
    return workspace === 'private' || me.memberships.some((m) => m.orgId === workspace);
  }

  private async fetchOrgPolicy(actor: Actor, orgId: string) {
    const org = await this.rpc.call(IdentityRpc.getOrg, { orgId }, { actor: { userId: actor.userId, platformRoles: [] } });
    const p = org.policy;
    await this.ds.query(
      `INSERT INTO org_policies (org_id, eu_only, allowed_models, chat_retention_days, blocked_terms) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (org_id) DO NOTHING`,
      [orgId, p.euOnly, p.allowedModels, p.chatRetentionDays, p.blockedTerms ?? []],
    );
    return { eu_only: p.euOnly, allowed_models: p.allowedModels, blocked_terms: p.blockedTerms ?? [] };
  }
}
