import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { createHmac, randomBytes } from 'node:crypto';
import type { EntityManager } from 'typeorm';
import type { Logger } from 'pino';
import { ProblemError } from '@ally/contracts';
import { keyEncryptionKey, LOGGER, open, seal, StartupError } from '@ally/platform';
import { CHAT_CONFIG, type ChatConfig } from '../config.js';

/** One user's unwrapped data key, for the texts of one request. */
export class UserKey {
  constructor(
    private readonly userId: string,
    private readonly key: Buffer,
  ) {}

  seal(text: string): Buffer {
    return seal(this.key, Buffer.from(text, 'utf8'), this.userId);
  }

  open(sealed: Buffer): string {
    return open(this.key, sealed, this.userId).toString('utf8');
  }
}

/**
 * Envelope encryption of chat content: each user has a random 256-bit data
 * key, stored only wrapped (AES-256-GCM) by the key-encryption key from the
 * environment; content is sealed under the data key with the user id as
 * associated data. Deleting a user's data key makes every copy of their
 * content, backups included, unreadable (crypto-shredding). A KMS can replace
 * the KEK by implementing wrap/unwrap.
 */
@Injectable()
export class ContentCipher implements OnModuleInit {
  private readonly kek: Buffer;

  constructor(
    private readonly ds: DataSource,
    @Inject(CHAT_CONFIG) config: ChatConfig,
    @Inject(LOGGER) logger: Logger,
  ) {
    this.kek = keyEncryptionKey(config.CHAT_KEK, { variable: 'CHAT_KEK', protects: 'chat content is encrypted', nodeEnv: config.NODE_ENV, logger, seed: 'ally-development-kek' });
  }

  /**
   * A KEK that does not open the stored data keys (mistyped, or changed) stops the start: otherwise every history
   * would fail to read, and users' first keys would be wrapped under it, unreadable once the right key is back
   * (erasure marks, keyed by it too, would no longer match either).
   */
  async onModuleInit(): Promise<void> {
    const [row]: { user_id: string; wrapped: Buffer }[] = await this.ds.query(`SELECT user_id, wrapped FROM data_keys ORDER BY created_at DESC LIMIT 1`);
    if (!row) return;
    try {
      this.unwrap(row.user_id, row.wrapped);
    } catch {
      throw new StartupError('CHAT_KEK does not open the stored data keys: start chat with the key they were wrapped with (chat content cannot be read without it)');
    }
  }

  async encrypt(em: EntityManager, userId: string, text: string): Promise<Buffer> {
    return seal(await this.dataKey(em, userId, true), Buffer.from(text, 'utf8'), userId);
  }

  async decrypt(em: EntityManager, userId: string, sealed: Buffer): Promise<string> {
    return open(await this.dataKey(em, userId, false), sealed, userId).toString('utf8');
  }

  /** Many sealed texts, looking each user's data key up once (same result as `decrypt` each). */
  async decryptMany(em: EntityManager, items: { userId: string; sealed: Buffer }[]): Promise<string[]> {
    const keys = new Map<string, Promise<Buffer>>();
    const keyOf = (userId: string) => {
      let key = keys.get(userId);
      if (!key) keys.set(userId, (key = this.dataKey(em, userId, false)));
      return key;
    };
    return Promise.all(items.map(async ({ userId, sealed }) => open(await keyOf(userId), sealed, userId).toString('utf8')));
  }

  /**
   * The user's data key from the wrapped form the caller read along with its
   * own rows (no query of its own). Without one yet, it is created, but only
   * while the caller's conversation still exists: an erasure that removed it
   * meanwhile leaves no key of the erased user behind (410 instead).
   */
  async userKey(em: EntityManager, userId: string, wrapped: Buffer | null, conversationId: string): Promise<UserKey> {
    return new UserKey(userId, wrapped ? this.unwrap(userId, wrapped) : await this.createKey(em, userId, conversationId));
  }

  /** How an erased subject is remembered without their id: a hash keyed by the KEK. */
  erasureMark(userId: string): Buffer {
    return createHmac('sha256', this.kek).update(`erased:${userId}`).digest();
  }

  /** Whether the subject's erasure has committed (its mark is kept), read through the caller's `em`. */
  async isErased(em: EntityManager, userId: string): Promise<boolean> {
    const [{ erased }] = await em.query(`SELECT EXISTS (SELECT 1 FROM erased_subjects WHERE mark = $1) AS erased`, [this.erasureMark(userId)]);
    return erased;
  }

  /** Crypto-shredding: without the key, the ciphertext anywhere is noise. */
  async shred(em: EntityManager, userId: string): Promise<void> {
    await em.query(`DELETE FROM data_keys WHERE user_id = $1`, [userId]);
  }

  private async dataKey(em: EntityManager, userId: string, create: boolean): Promise<Buffer> {
    const rows: { wrapped: Buffer }[] = await em.query(`SELECT wrapped FROM data_keys WHERE user_id = $1`, [userId]);
    if (rows[0]) return this.unwrap(userId, rows[0].wrapped);
    if (!create) throw new ProblemError(410, 'This content was erased and can no longer be read');
    return this.createKey(em, userId);
  }

  /**
   * A new data key; with `whileConversation`, only while that conversation of
   * the user exists (FOR KEY SHARE: an erasure deleting it right now is waited
   * for, then seen). Another request may have created one first: theirs wins.
   */
  private async createKey(em: EntityManager, userId: string, whileConversation?: string): Promise<Buffer> {
    await em.query(
      `INSERT INTO data_keys (user_id, wrapped) SELECT $1, $2
        WHERE $3::uuid IS NULL OR EXISTS (SELECT 1 FROM conversations WHERE id = $3 AND user_id = $1 FOR KEY SHARE)
       ON CONFLICT (user_id) DO NOTHING`,
      [userId, seal(this.kek, randomBytes(32), `dk:${userId}`), whileConversation ?? null],
    );
    return this.dataKey(em, userId, false);
  }

  private unwrap(userId: string, wrapped: Buffer): Buffer {
    return open(this.kek, wrapped, `dk:${userId}`);
  }
}
