import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import type { PrivacyErasure, PrivacyExport } from '@ally/contracts';
import { ContentCipher } from '../crypto/content-cipher.service.js';
import { MessageEntity } from '../conversations/message.entity.js';
import { ConversationsService } from '../conversations/conversations.service.js';

const inScope = (scope: string) => (scope === 'all' ? `TRUE` : `workspace = $2`);

/** chat's part of data-subject requests: everything of the subject, decrypted; erasure crypto-shreds. */
@Injectable()
export class ChatPrivacyService {
  constructor(
    private readonly ds: DataSource,
    private readonly cipher: ContentCipher,
    private readonly conversations: ConversationsService,
  ) {}

  async export(userId: string, scope: string): Promise<PrivacyExport> {
    const params = scope === 'all' ? [userId] : [userId, scope];
    const rows = await this.ds.query(`SELECT id FROM conversations WHERE user_id = $1 AND ${inScope(scope)} ORDER BY created_at`, params);
    const actor = { userId, platformRoles: [] };
    const conversations = [];
    for (const { id } of rows) conversations.push(await this.conversations.get(actor, id).catch(() => ({ id, erased: true })));
    const assistants = await this.ds.query(`SELECT id, workspace, name, instructions, model, created_at FROM assistants WHERE created_by = $1 AND ${inScope(scope)}`, params);
    const [settings] = await this.ds.query(`SELECT restrict_to_eu FROM user_settings WHERE user_id = $1`, [userId]);
    return { service: 'chat', categories: { 'chat-history': { conversations, assistants }, 'policy-replica': { restrictToEu: settings?.restrict_to_eu ?? null } } };
  }

  /**
   * Deletes the subject's conversations and messages in scope. For the whole
   * account it also deletes their data key, so copies in backups can no
   * longer be decrypted.
   */
  async erase(userId: string, scope: string): Promise<PrivacyErasure> {
    return this.ds.transaction(async (em) => {
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
        // Events already published that name the subject: the stream keeps them at most 7 days, our copy goes now.
        await em.query(`DELETE FROM outbox WHERE sent_at IS NOT NULL AND payload::text LIKE '%' || $1 || '%'`, [userId]);
      }
      return { service: 'chat', affected: { 'chat-history': Number(messages) + Number(conversations), 'data-keys': keys } };
    });
  }
}
