import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { randomUUID } from 'node:crypto';
import { decodeCursor, keysetPage, managesOrg, ProblemError, type Actor, type Assistant, type Page } from '@ally/contracts';
import { RouterService } from '../catalog/router.service.js';
import { PolicyService } from '../policy/policy.service.js';
import { AssistantEntity } from './assistant.entity.js';

const toAssistant = (a: AssistantEntity): Assistant => ({
  id: a.id,
  workspace: a.workspace,
  name: a.name,
  instructions: a.instructions,
  model: a.model,
  createdAt: a.createdAt.toISOString(),
});

/** Specialised assistants: instructions and a default model, per workspace. */
@Injectable()
export class AssistantsService {
  constructor(
    private readonly ds: DataSource,
    private readonly policies: PolicyService,
    private readonly router: RouterService,
  ) {}

  async create(actor: Actor, input: { workspace: string; name: string; instructions: string; model?: string }): Promise<Assistant> {
    const policy = await this.policies.resolve(actor, input.workspace);
    if (input.workspace !== 'private') {
      const [m] = await this.ds.query(`SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2`, [input.workspace, actor.userId]);
      if (!managesOrg(m?.role)) throw new ProblemError(403, 'Only owners and admins create assistants for the organisation');
    }
    // A default model no one may use is refused now (404 unknown, 422 not allowed), not at every message. An
    // organisation's assistant is for all its members: its policy decides, not the creator's own restrictToEu.
    if (input.model) this.router.candidates(input.model, input.workspace === 'private' ? policy : { ...policy, restrictToEu: false, euOnly: policy.orgEuOnly });
    const row = this.ds.getRepository(AssistantEntity).create({ id: randomUUID(), createdBy: actor.userId, createdAt: new Date(), model: input.model ?? null, ...input });
    await this.ds.getRepository(AssistantEntity).insert(row);
    return toAssistant(row);
  }

  /** A page, newest first (`?limit=&cursor=` as every list of API.md). */
  async list(actor: Actor, workspace: string, limit = 20, cursor?: string): Promise<Page<Assistant>> {
    await this.policies.resolve(actor, workspace);
    const after = decodeCursor(cursor);
    // Private assistants are their creator's; an organisation's are shared with its members.
    const rows: AssistantEntity[] = await this.ds
      .getRepository(AssistantEntity)
      .createQueryBuilder('a')
      .where('a.workspace = :workspace', { workspace })
      .andWhere(workspace === 'private' ? 'a.created_by = :user' : 'TRUE', workspace === 'private' ? { user: actor.userId } : {})
      .andWhere(after ? '(a.created_at, a.id) < (:at, :id)' : 'TRUE', after ?? {})
      .orderBy('a.created_at', 'DESC')
      .addOrderBy('a.id', 'DESC')
      .limit(limit + 1)
      .getMany();
    const { page, nextCursor } = keysetPage(rows, limit, (r) => [r.createdAt, r.id]);
    return { data: page.map(toAssistant), nextCursor };
  }

  /** The assistant a conversation uses, if the caller may use it. */
  async usable(actor: Actor, workspace: string, id: string): Promise<AssistantEntity> {
    const a = await this.ds.getRepository(AssistantEntity).findOneBy({ id, workspace });
    if (!a || (workspace === 'private' && a.createdBy !== actor.userId)) throw new ProblemError(404, 'Assistant not found');
    return a;
  }
}
