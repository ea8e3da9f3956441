import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { ProblemError, type Actor, type UsageView } from '@ally/contracts';
import { lockSubject } from '@ally/persistence';
import { isErased, Pseudonyms } from '../common/erased-subjects.js';
import { WorkspaceAccess } from '../common/workspace-access.service.js';
import { currentPeriod } from '../common/workspace-key.js';
import { QuotaService } from '../quota/quota.service.js';

/** A cap for someone the organisation does not have (any more): it would never apply. */
const notAMember = () => new ProblemError(400, 'userId is not a member of this organisation', { errors: [{ field: 'userId', message: 'must be a member of the organisation' }] });

@Injectable()
export class UsageService {
  constructor(
    private readonly ds: DataSource,
    private readonly access: WorkspaceAccess,
    private readonly quota: QuotaService,
    private readonly pseudonyms: Pseudonyms,
  ) {}

  async view(actor: Actor, workspace: string, period = currentPeriod()): Promise<UsageView> {
    const key = await this.access.read(actor, workspace);
    // This month as the quota counts it (also what an erasure renamed); a month gone by shows only what still names the workspace.
    const names = period === this.quota.currentPeriod ? this.quota.ledgerNames(key) : [key];
    const rows = await this.ds.query(
      `SELECT model, sum(tokens)::bigint AS tokens, sum(cost)::float AS cost FROM ledger WHERE workspace = ANY($1) AND period = $2 GROUP BY model ORDER BY model`,
      [names, period],
    );
    const byModel = rows.map((r: { model: string; tokens: string; cost: number }) => ({ model: r.model, tokens: Number(r.tokens), cost: Math.round(r.cost * 1e6) / 1e6 }));
    return { period, tokensUsed: byModel.reduce((n: number, m: { tokens: number }) => n + m.tokens, 0), tokenQuota: await this.quota.quotaOfPeriod(key, period), byModel };
  }

  /** Spend caps: owners/admins for the workspace and its members, a user for their private workspace. */
  async setCap(actor: Actor, input: { workspace: string; userId?: string; monthlyTokens: number | null }) {
    const key = await this.access.manage(actor, input.workspace);
    if (input.workspace === 'private' && input.userId && input.userId !== actor.userId) throw new ProblemError(400, 'A private workspace has only you as member', { errors: [{ field: 'userId', message: 'must be you or absent' }] });
    // A cap for someone who is not a member would never apply (and would linger if they joined later, unasked).
    // (Removing one, null, stays possible for someone who has left.)
    if (input.monthlyTokens !== null && input.workspace !== 'private' && input.userId && input.userId !== actor.userId && !(await this.access.isMember(key, input.userId))) {
      throw notAMember();
    }
    const user = input.workspace === 'private' ? '' : (input.userId ?? '');
    if (input.monthlyTokens === null) await this.ds.query(`DELETE FROM caps WHERE workspace = $1 AND user_id = $2`, [key, user]);
    else {
      await this.ds.transaction(async (em) => {
        // A member's cap names them: not once their erasure ran here, nor while it runs (its lock, shared, waits for it).
        if (user) {
          await lockSubject(em, user, 'shared');
          if (await isErased(em, this.pseudonyms.of(user))) throw notAMember();
        } else if (input.workspace === 'private') {
          // A private workspace's cap is keyed by its owner: not written behind their erasure either.
          await this.access.holdAgainstErasure(em, actor);
        }
        await em.query(`INSERT INTO caps (workspace, user_id, monthly_tokens) VALUES ($1, $2, $3) ON CONFLICT (workspace, user_id) DO UPDATE SET monthly_tokens = EXCLUDED.monthly_tokens, set_at = now()`, [key, user, input.monthlyTokens]);
      });
    }
    await this.quota.refresh();
    return { workspace: input.workspace, userId: input.userId ?? null, monthlyTokens: input.monthlyTokens };
  }
}
