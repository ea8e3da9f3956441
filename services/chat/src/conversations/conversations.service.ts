import { Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { randomUUID } from 'node:crypto';
import { decodeCursor, encodeCursor, fitting, keysetPage, ProblemError, REPLY_PAGE_BYTES, type Actor, type ChatMessage, type Conversation, type ConversationWithMessages, type Page } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { isForeignKeyViolation, lockSubject } from '@ally/persistence';
import { AssistantsService } from '../assistants/assistants.service.js';
import { AnswersInFlight } from '../completions/answers-in-flight.js';
import { ContentCipher } from '../crypto/content-cipher.service.js';
import { PolicyService } from '../policy/policy.service.js';
import { assertNotHeld } from '../privacy/own-hold.js';
import { ConversationEntity } from './conversation.entity.js';
import { MessageEntity } from './message.entity.js';

/** A conversation belongs to one user in one workspace; anyone else gets a 404. */
@Injectable()
export class ConversationsService {
  constructor(
    private readonly ds: DataSource,
    private readonly cipher: ContentCipher,
    private readonly policies: PolicyService,
    private readonly assistants: AssistantsService,
    private readonly inFlight: AnswersInFlight,
    private readonly rpc: RpcClient,
  ) {}

  async create(actor: Actor, input: { workspace: string; title?: string; assistantId?: string }): Promise<Conversation> {
    // Read before the transaction: they may ask identity, and a transaction waiting on the pool
    // or on an RPC while it holds a connection starves the pool under load.
    await this.policies.resolve(actor, input.workspace);
    if (input.assistantId) await this.assistants.usable(actor, input.workspace, input.assistantId);
    return this.ds.transaction(async (em) => {
      // Not while the subject's erasure runs; one that committed since the policy was read has left its mark.
      await lockSubject(em, actor.userId, 'shared');
      if (await this.cipher.isErased(em, actor.userId)) throw new ProblemError(410, 'This account was erased');
      const now = new Date();
      const row = em.getRepository(ConversationEntity).create({
        id: randomUUID(),
        userId: actor.userId,
        workspace: input.workspace,
        titleEnc: input.title ? await this.cipher.encrypt(em, actor.userId, input.title) : null,
        assistantId: input.assistantId ?? null,
        createdAt: now,
        updatedAt: now,
      });
      await em
        .getRepository(ConversationEntity)
        .insert(row)
        .catch((err: unknown) => {
          // Its assistant was deleted after it was found usable.
          throw isForeignKeyViolation(err) ? new ProblemError(404, 'Assistant not found', { errors: [{ field: 'assistantId', message: 'was deleted meanwhile' }] }) : err;
        });
      return this.toConversation(em, row);
    });
  }

  async list(actor: Actor, workspace: string, limit: number, cursor?: string): Promise<Page<Conversation>> {
    await this.policies.assertReadable(actor, workspace);
    const after = decodeCursor(cursor);
    const rows: ConversationEntity[] = await this.ds
      .getRepository(ConversationEntity)
      .createQueryBuilder('c')
      .where('c.user_id = :user AND c.workspace = :workspace', { user: actor.userId, workspace })
      .andWhere(after ? '(c.updated_at, c.id) < (:at, :id)' : 'TRUE', after ?? {})
      .orderBy('c.updated_at', 'DESC')
      .addOrderBy('c.id', 'DESC')
      .limit(limit + 1)
      .getMany();
    const { page, nextCursor } = keysetPage(rows, limit, (r) => [r.updatedAt, r.id]);
    // The titles open under one read of the user's key, not one per conversation.
    const titled = page.filter((r) => r.titleEnc);
    const titles = await this.cipher.decryptMany(this.ds.manager, titled.map((r) => ({ userId: r.userId, sealed: r.titleEnc! })));
    const titleOf = new Map(titled.map((r, i) => [r.id, titles[i]]));
    return { data: page.map((r) => conversationOf(r, titleOf.get(r.id) ?? null)), nextCursor };
  }

  /**
   * The conversation and a page of its messages, newest first in the reading
   * and oldest first in the answer. A page ends at `limit` messages or when the
   * next would take it past REPLY_PAGE_BYTES: a reply must fit one NATS message
   * (1 MB), and a message alone may hold 100,000 characters.
   */
  async get(actor: Actor, id: string, limit = 100, cursor?: string): Promise<ConversationWithMessages> {
    const before = decodeCursor(cursor);
    const conversation = await this.owned(actor, id);
    const rows: MessageEntity[] = await this.ds
      .getRepository(MessageEntity)
      .createQueryBuilder('m')
      .where('m.conversation_id = :id', { id })
      .andWhere(before ? '(m.created_at, m.id) < (:at, :before)' : 'TRUE', before ? { at: before.at, before: before.id } : {})
      .orderBy('m.created_at', 'DESC')
      .addOrderBy('m.id', 'DESC')
      .limit(limit + 1)
      .getMany();
    const newest = rows.slice(0, limit);
    const contents = await this.cipher.decryptMany(this.ds.manager, newest.map((m) => ({ userId: m.userId, sealed: m.contentEnc })));
    const messages = fitting(newest.map((row, i) => toMessage(row, contents[i])), REPLY_PAGE_BYTES);
    const oldest = newest[messages.length - 1];
    const nextCursor = messages.length < rows.length && oldest ? encodeCursor(oldest.createdAt, oldest.id) : null;
    return { ...(await this.toConversation(this.ds.manager, conversation)), messages: messages.reverse(), nextCursor };
  }

  async delete(actor: Actor, id: string): Promise<void> {
    await this.owned(actor, id);
    await assertNotHeld(this.rpc, actor, 'This conversation');
    await this.ds.getRepository(ConversationEntity).delete({ id });
    // An answer still being written into it stops: its words have nowhere to go, and the rest is not billed.
    this.inFlight.stop({ conversationId: id });
  }

  /**
   * The caller's own conversation, or 404 (never revealing someone else's).
   * Business conversations stay with the organisation: a member who left no
   * longer reaches them through the API.
   */
  async owned(actor: Actor, id: string): Promise<ConversationEntity> {
    const row = await this.ds.getRepository(ConversationEntity).findOneBy({ id, userId: actor.userId });
    const notFound = () => new ProblemError(404, 'Conversation not found');
    if (!row) throw notFound();
    if (actor.apiKeyWorkspace && actor.apiKeyWorkspace !== row.workspace) throw notFound();
    if (!(await this.policies.isMember(actor, row.workspace))) throw notFound();
    return row;
  }

  private async toConversation(em: EntityManager, c: ConversationEntity): Promise<Conversation> {
    return conversationOf(c, c.titleEnc ? await this.cipher.decrypt(em, c.userId, c.titleEnc) : null);
  }
}

const conversationOf = (c: ConversationEntity, title: string | null): Conversation => ({
  id: c.id,
  workspace: c.workspace,
  title,
  assistantId: c.assistantId,
  createdAt: c.createdAt.toISOString(),
  updatedAt: c.updatedAt.toISOString(),
});

function toMessage(m: MessageEntity, content: string): ChatMessage {
  return {
    id: m.id,
    role: m.role,
    content,
    createdAt: m.createdAt.toISOString(),
    ...(m.model ? { model: m.model } : {}),
    ...(m.promptTokens !== null ? { usage: { promptTokens: m.promptTokens, completionTokens: m.completionTokens ?? 0 } } : {}),
    ...(m.residency ? { residency: m.residency } : {}),
    ...(m.status !== 'complete' ? { status: m.status } : {}),
  };
}
