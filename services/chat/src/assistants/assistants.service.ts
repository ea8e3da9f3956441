import { Inject, Injectable, type OnApplicationBootstrap } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { decodeCursor, ERASED_USER, fitting, keysetPage, limitReached, managesOrg, ProblemError, REPLY_PAGE_BYTES, type Actor, type Assistant, type Page } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { lockNamed, lockSubject } from '@ally/persistence';
import { LOGGER } from '@ally/platform';
import { CHAT_CONFIG, type ChatConfig } from '../config.js';
import { RouterService } from '../catalog/router.service.js';
import { ContentCipher } from '../crypto/content-cipher.service.js';
import { PolicyService } from '../policy/policy.service.js';
import { assertNotHeld } from '../privacy/own-hold.js';
import { AssistantEntity } from './assistant.entity.js';
import { assistantText, openedAssistantText, type AssistantText } from './assistant-text.js';

const toAssistant = (a: AssistantEntity, text: AssistantText): Assistant => ({
  id: a.id,
  workspace: a.workspace,
  name: text.name,
  instructions: text.instructions,
  model: a.model,
  createdAt: a.createdAt.toISOString(),
});

const SEAL_BATCH = 200;

/**
 * Specialised assistants: instructions and a default model, per workspace. A
 * private assistant's name and instructions are sealed under its creator's
 * data key (an erasure shreds them with their messages); an organisation's
 * are the organisation's and stay readable after their creator is gone.
 */
@Injectable()
export class AssistantsService implements OnApplicationBootstrap {
  constructor(
    private readonly ds: DataSource,
    private readonly policies: PolicyService,
    private readonly router: RouterService,
    private readonly cipher: ContentCipher,
    private readonly rpc: RpcClient,
    @Inject(CHAT_CONFIG) private readonly config: ChatConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    const sealed = await this.sealPlaintext();
    if (sealed) this.logger.info({ sealed }, 'sealed private assistants written before they were encrypted');
  }

  async create(actor: Actor, input: { workspace: string; name: string; instructions: string; model?: string }): Promise<Assistant> {
    const policy = await this.policies.resolve(actor, input.workspace);
    if (input.workspace !== 'private') {
      const [m] = await this.ds.query(`SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2`, [input.workspace, actor.userId]);
      if (!managesOrg(m?.role)) throw new ProblemError(403, 'Only owners and admins create assistants for the organisation');
    }
    // A default model no one may use is refused now (404 unknown, 422 not allowed), not at every message. An
    // organisation's assistant is for all its members: its policy decides, not the creator's own restrictToEu.
    if (input.model) this.router.candidates(input.model, input.workspace === 'private' ? policy : { ...policy, restrictToEu: false, euOnly: policy.orgEuOnly });
    const text = { name: input.name, instructions: input.instructions };
    const row = await this.ds.transaction(async (em) => {
      const base = { id: randomUUID(), workspace: input.workspace, createdBy: actor.userId, createdAt: new Date(), model: input.model ?? null };
      // Counted in turn with the workspace's other new assistants.
      const mine = input.workspace === 'private';
      await lockNamed(em, `assistants:${mine ? `private:${actor.userId}` : input.workspace}`);
      const [{ n }] = await em.query(`SELECT count(*)::int AS n FROM assistants WHERE workspace = $1 AND ($2::uuid IS NULL OR created_by = $2)`, [
        input.workspace,
        mine ? actor.userId : null,
      ]);
      if (n >= this.config.MAX_ASSISTANTS_PER_WORKSPACE) {
        throw limitReached(`This workspace has ${this.config.MAX_ASSISTANTS_PER_WORKSPACE} assistants, the most one may; delete one it no longer needs (DELETE /v1/assistants/:id)`);
      }
      let entity: AssistantEntity;
      if (mine) {
        // Not while the subject's erasure runs, and no new data key for someone erased meanwhile.
        await lockSubject(em, actor.userId, 'shared');
        if (await this.cipher.isErased(em, actor.userId)) throw new ProblemError(410, 'This account was erased');
        entity = em.getRepository(AssistantEntity).create({ ...base, name: null, instructions: null, sealed: await this.cipher.encrypt(em, actor.userId, assistantText(text)) });
      } else {
        entity = em.getRepository(AssistantEntity).create({ ...base, ...text, sealed: null });
      }
      await em.getRepository(AssistantEntity).insert(entity);
      return entity;
    });
    return toAssistant(row, text);
  }

  /**
   * Deletes an assistant: a private one by its creator (a legal hold on them waits, as for their conversations), an
   * organisation's by its owners and admins. Conversations that used it go on without its instructions. Anyone
   * else, and an API key of another workspace, gets 404.
   */
  async remove(actor: Actor, id: string): Promise<void> {
    const notFound = () => new ProblemError(404, 'Assistant not found');
    const a = await this.ds.getRepository(AssistantEntity).findOneBy({ id });
    if (!a || (actor.apiKeyWorkspace && actor.apiKeyWorkspace !== a.workspace)) throw notFound();
    if (a.workspace === 'private') {
      if (a.createdBy !== actor.userId) throw notFound();
    } else {
      // A membership identity has and chat's replica not yet (the member's first request) is fetched first.
      if (!(await this.policies.isMember(actor, a.workspace))) throw notFound();
      const [m] = await this.ds.query(`SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2`, [a.workspace, actor.userId]);
      if (!m) throw notFound();
      if (!managesOrg(m.role)) throw new ProblemError(403, "Only owners and admins delete the organisation's assistants");
    }
    // Whoever wrote it (private, or an organisation's: their export shows it) may be under a legal hold: it waits for it,
    // also when an owner or admin deletes it. An author since erased had none (a hold stops an erasure).
    if (a.createdBy !== ERASED_USER) await assertNotHeld(this.rpc, actor, 'This assistant', a.createdBy);
    await this.ds.getRepository(AssistantEntity).delete({ id });
  }

  /** A page, newest first (`?limit=&cursor=` as every list of API.md). */
  async list(actor: Actor, workspace: string, limit = 20, cursor?: string): Promise<Page<Assistant>> {
    await this.policies.assertReadable(actor, workspace);
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
    const first = rows.slice(0, limit);
    const texts = await this.textsOf(first);
    // Up to `limit`, as far as one reply holds (instructions may be 20,000 characters each).
    const data = fitting(first.map((a, i) => toAssistant(a, texts[i])), REPLY_PAGE_BYTES);
    const { nextCursor } = keysetPage(rows, data.length, (r) => [r.createdAt, r.id]);
    return { data, nextCursor };
  }

  /** The assistant a conversation uses, if the caller may use it. */
  async usable(actor: Actor, workspace: string, id: string): Promise<AssistantEntity> {
    const a = await this.ds.getRepository(AssistantEntity).findOneBy({ id, workspace });
    if (!a || (workspace === 'private' && a.createdBy !== actor.userId)) throw new ProblemError(404, 'Assistant not found');
    return a;
  }

  /** Names and instructions of the rows, opened where sealed (each creator's key looked up once). */
  private async textsOf(rows: AssistantEntity[]): Promise<AssistantText[]> {
    const sealed = rows.filter((r) => r.sealed);
    const opened = await this.cipher.decryptMany(this.ds.manager, sealed.map((r) => ({ userId: r.createdBy, sealed: r.sealed! })));
    const byId = new Map(sealed.map((r, i) => [r.id, openedAssistantText(opened[i])]));
    return rows.map((r) => byId.get(r.id) ?? { name: r.name ?? '', instructions: r.instructions ?? '' });
  }

  /**
   * Seals private assistants still stored as text (written before sealing
   * existed), in batches; every replica may run it at once (a row is sealed
   * once). Answers how many it sealed.
   */
  async sealPlaintext(): Promise<number> {
    let total = 0;
    for (;;) {
      const n = await this.ds.transaction(async (em) => {
        const rows: { id: string; created_by: string; name: string; instructions: string }[] = await em.query(
          `SELECT id, created_by, name, instructions FROM assistants WHERE workspace = 'private' AND sealed IS NULL ORDER BY id LIMIT ${SEAL_BATCH} FOR UPDATE SKIP LOCKED`,
        );
        for (const r of rows) {
          // One left behind by an erasure gets no key of its creator back: it goes.
          if (await this.cipher.isErased(em, r.created_by)) {
            await em.query(`DELETE FROM assistants WHERE id = $1`, [r.id]);
            continue;
          }
          const sealed = await this.cipher.encrypt(em, r.created_by, assistantText({ name: r.name ?? '', instructions: r.instructions ?? '' }));
          await em.query(`UPDATE assistants SET sealed = $2, name = NULL, instructions = NULL WHERE id = $1`, [r.id, sealed]);
        }
        return rows.length;
      });
      total += n;
      if (n < SEAL_BATCH) return total;
    }
  }
}
