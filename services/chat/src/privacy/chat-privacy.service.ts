import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import type { PrivacyErasure, PrivacyExport } from '@ally/contracts';
import { forgetSubjectInOutbox } from '@ally/messaging';
import { ContentCipher } from '../crypto/content-cipher.service.js';
import { MessageEntity } from '../conversations/message.entity.js';
import { ERASED_USER, lockSubject } from './subject-lock.js';

/** Messages per export page: about 0.4 MB, well inside NATS's 1 MiB. */
const EXPORT_PAGE = 1000;

const inScope = (scope: string) => (scope === 'all' ? `TRUE` : `workspace = $2`);

/** chat's part of data-subject requests: everything of the subject, decrypted; erasure crypto-shreds. */
/** The user id that events about an erased subject carry instead of theirs (billing pseudonymises to the same). */

@Injectable()
export class ChatPrivacyService {
  constructor(
    private readonly ds: DataSource,
    private readonly cipher: ContentCipher,
  ) {}

  /**
   * Everything of the subject in scope, decrypted, in pages of EXPORT_PAGE
   * messages (an answer must fit a NATS message): the first page also holds
   * the conversations, assistants and settings.
   */
  async export(userId: string, scope: string, page = 0): Promise<PrivacyExport> {
    const params = scope === 'all' ? [userId] : [userId, scope];
    const rows = await this.ds.query(
      `SELECT m.id, m.conversation_id, m.role, m.content_enc, m.model, m.prompt_tokens, m.completion_tokens, m.residency, m.status, m.created_at
         FROM messages m JOIN conversations c ON c.id = m.conversation_id
        WHERE c.user_id = $1 AND ${inScope(scope).replace('workspace', 'c.workspace')}
        ORDER BY m.created_at, m.id LIMIT ${EXPORT_PAGE + 1} OFFSET ${page * EXPORT_PAGE}`,
      params,
    );
    const more = rows.length > EXPORT_PAGE;
    const pageRows = rows.slice(0, EXPORT_PAGE);
    const texts = await this.cipher.decryptMany(this.ds.manager, pageRows.map((r: { content_enc: Buffer }) => ({ userId, sealed: r.content_enc })));
    const messages = pageRows.map((r: any, i: number) => ({
      id: r.id,
      conversationId: r.conversation_id,
      role: r.role,
      content: texts[i],
      createdAt: new Date(r.created_at).toISOString(),
      model: r.model,
      usage: r.prompt_tokens === null ? null : { promptTokens: r.prompt_tokens, completionTokens: r.completion_tokens },
      residency: r.residency,
      status: r.status,
    }));
    const next = more ? { nextPage: page + 1 } : {};
    if (page > 0) return { service: 'chat', categories: { 'chat-history': { messages } }, ...next };
    const conversations = await this.ds.query(
      `SELECT id, workspace, title_enc, assistant_id, created_at, updated_at FROM conversations WHERE user_id = $1 AND ${inScope(scope)} ORDER BY created_at`,
      params,
    );
    const titles = await this.cipher.decryptMany(
      this.ds.manager,
      conversations.filter((c: { title_enc: Buffer | null }) => c.title_enc).map((c: { title_enc: Buffer }) => ({ userId, sealed: c.title_enc })),
    );
    let t = 0;
    const conversationList = conversations.map((c: any) => ({
      id: c.id,
      workspace: c.workspace,
      title: c.title_enc ? titles[t++] : null,
      assistantId: c.assistant_id,
      createdAt: new Date(c.created_at).toISOString(),
      updatedAt: new Date(c.updated_at).toISOString(),
    }));
    const assistants = await this.ds.query(`SELECT id, workspace, name, instructions, model, created_at FROM assistants WHERE created_by = $1 AND ${inScope(scope)}`, params);
    const [settings] = await this.ds.query(`SELECT restrict_to_eu FROM user_settings WHERE user_id = $1`, [userId]);
    return {
      service: 'chat',
      categories: { 'chat-history': { conversations: conversationList, messages, assistants }, 'policy-replica': { restrictToEu: settings?.restrict_to_eu ?? null } },
      ...next,
    };
  }

  /**
   * Deletes the subject's conversations and messages in scope. For the whole
   * account it also deletes their data key, so copies in backups can no
   * longer be decrypted.
   */
  async erase(userId: string, scope: string): Promise<PrivacyErasure> {
    return this.ds.transaction(async (em) => {
      // First: from here on chat refuses the subject, also the turn in flight (it sees the mark or waits for this commit).
      if (scope === 'all') {
        await lockSubject(em, userId, 'exclusive'); // a conversation being created finishes first
        await em.query(`INSERT INTO erased_subjects (mark) VALUES ($1) ON CONFLICT DO NOTHING`, [this.cipher.erasureMark(userId)]);
      }
      const params = scope === 'all' ? [userId] : [userId, scope];
      const [, messages] = await em.query(
        `DELETE FROM messages WHERE conversation_id IN (SELECT id FROM conversations WHERE user_id = $1 AND ${inScope(scope)})`,
        params,
      );
      const [, conversations] = await em.query(`DELETE FROM conversations WHERE user_id = $1 AND ${inScope(scope)}`, params);
      let keys = 0;
      if (scope === 'all') {
        await em.getRepository(MessageEntity).delete({ userId });
        const before = await em.query(`SELECT 1 FROM data_keys WHERE user_id = $1`, [userId]);
        await this.cipher.shred(em, userId);
        keys = before.length;
        await em.query(`DELETE FROM assistants WHERE created_by = $1 AND workspace = 'private'`, [userId]);
        await em.query(`DELETE FROM user_settings WHERE user_id = $1`, [userId]);
        await em.query(`DELETE FROM restrictions WHERE user_id = $1`, [userId]);
        // The usage of a last answer still reaches billing, for the organisation's books, without the person.
        await forgetSubjectInOutbox(em, userId, { unpublishedAs: ERASED_USER });
      }
      return { service: 'chat', affected: { 'chat-history': Number(messages) + Number(conversations), 'data-keys': keys } };
    });
  }
}
