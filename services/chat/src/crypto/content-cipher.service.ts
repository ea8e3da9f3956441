import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { createHmac, randomBytes } from 'node:crypto';
import type { EntityManager } from 'typeorm';
import type { Logger } from 'pino';
import { ProblemError } from '@ally/contracts';
import { keyEncryptionKey, LOGGER, open, seal, StartupError } from '@ally/platform';
import { CHAT_CONFIG, type ChatConfig } from '../config.js';
import { ERASURE_MARK_EXPIRES } from '../retention.rules.js';

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

/** A key-encryption key and its fingerprint (stored with what it wrapped or keyed; says nothing of the key). */
export interface Kek {
  id: string;
  key: Buffer;
}

const kekOf = (key: Buffer): Kek => ({ id: createHmac('sha256', key).update('ally chat kek id').digest('hex').slice(0, 16), key });

/**
 * Envelope encryption of chat content: each user has a random 256-bit data
 * key, stored only wrapped (AES-256-GCM) by the key-encryption key from the
 * environment; content is sealed under the data key with the user id as
 * associated data. Deleting a user's data key makes every copy of their
 * content, backups included, unreadable (crypto-shredding). A KMS can replace
 * the KEK by implementing wrap/unwrap. The keys in CHAT_KEK_UNWRAP_ONLY open
 * what an earlier CHAT_KEK wrapped or keyed, until `rewrap-data-keys` moved it.
 */
@Injectable()
export class ContentCipher implements OnModuleInit {
  readonly current: Kek;
  /** Every key chat opens data keys with, the current one first. */
  readonly keks: readonly Kek[];

  constructor(
    private readonly ds: DataSource,
    @Inject(CHAT_CONFIG) config: ChatConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    this.current = kekOf(keyEncryptionKey(config.CHAT_KEK, { variable: 'CHAT_KEK', protects: 'chat content is encrypted', nodeEnv: config.NODE_ENV, logger, seed: 'ally-development-kek' }));
    const others = config.CHAT_KEK_UNWRAP_ONLY.map((k) => kekOf(Buffer.from(k, 'base64')));
    this.keks = [this.current, ...others.filter((k, i) => k.id !== this.current.id && others.findIndex((o) => o.id === k.id) === i)];
  }

  /**
   * Refuses to start without a KEK something stored needs: otherwise every history under it would fail to read,
   * users' first keys would be wrapped under a wrong one (unreadable once the right key is back), and the people
   * whose erasure marks it keyed would no longer be refused. The newest data key without a KEK id (written before
   * ids were kept) must open under a configured key, and every KEK id stored must be configured; the index on
   * (kek_id, created_at) keeps this to a few lookups however many keys there are.
   */
  async onModuleInit(): Promise<void> {
    await this.ds.query(`INSERT INTO keks (id) VALUES ($1) ON CONFLICT (id) DO NOTHING`, [this.current.id]);
    // Before KEK ids, only one KEK could ever exist: marks without one (older, or from a replica of the release
    // before during its rollout) are under it while it is the only one configured.
    if (this.keks.length === 1) await this.ds.query(`UPDATE erased_subjects SET kek_id = $1 WHERE kek_id IS NULL`, [this.current.id]);
    const configured = new Set(this.keks.map((k) => k.id));
    const stored: { kek_id: string }[] = await this.ds.query(
      `WITH RECURSIVE ids AS (
         (SELECT kek_id FROM data_keys WHERE kek_id IS NOT NULL ORDER BY kek_id LIMIT 1)
         UNION ALL
         SELECT (SELECT kek_id FROM data_keys WHERE kek_id > ids.kek_id ORDER BY kek_id LIMIT 1) FROM ids WHERE ids.kek_id IS NOT NULL)
       SELECT kek_id FROM ids WHERE kek_id IS NOT NULL`,
    );
    const missing = stored.map((r) => r.kek_id).filter((id) => !configured.has(id));
    if (missing.length) {
      throw new StartupError(`Data keys are wrapped under a KEK chat was not given (id ${missing.join(', ')}): start chat with it in CHAT_KEK or CHAT_KEK_UNWRAP_ONLY (chat content cannot be read without it)`);
    }
    const [legacy]: { user_id: string; wrapped: Buffer }[] = await this.ds.query(`SELECT user_id, wrapped FROM data_keys WHERE kek_id IS NULL ORDER BY created_at DESC LIMIT 1`);
    if (legacy) {
      try {
        this.unwrap(legacy.user_id, legacy.wrapped);
      } catch {
        throw new StartupError('CHAT_KEK does not open the stored data keys: start chat with the key they were wrapped with (chat content cannot be read without it)');
      }
    }
    const [marks]: { ids: string[] | null; until: Date | null }[] = await this.ds.query(
      `SELECT array_agg(DISTINCT kek_id) AS ids, max(${ERASURE_MARK_EXPIRES}) AS until FROM erased_subjects WHERE kek_id <> ALL($1::text[]) AND ${ERASURE_MARK_EXPIRES} > now()`,
      [[...configured]],
    );
    if (marks.ids) {
      throw new StartupError(
        `Erasure marks kept until ${marks.until!.toISOString()} were keyed by a KEK chat was not given (id ${marks.ids.join(', ')}): keep it in CHAT_KEK_UNWRAP_ONLY until then, or chat would no longer refuse those erased people`,
      );
    }
    if (this.keks.length > 1 && (legacy || stored.some((r) => r.kek_id !== this.current.id))) {
      this.logger.warn(`data keys are not all wrapped under CHAT_KEK (id ${this.current.id}) yet: once every replica runs with it, run \`node services/chat/dist/main.js rewrap-data-keys\` in one of them`);
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
  erasureMark(userId: string, kek: Kek = this.current): Buffer {
    return createHmac('sha256', kek.key).update(`erased:${userId}`).digest();
  }

  /** The subject's mark under each configured KEK: one made before a rotation still counts (a `bytea[]` parameter). */
  erasureMarks(userId: string): Buffer[] {
    return this.keks.map((kek) => this.erasureMark(userId, kek));
  }

  /** Whether the subject's erasure has committed (its mark is kept), read through the caller's `em`. */
  async isErased(em: EntityManager, userId: string): Promise<boolean> {
    const [{ erased }] = await em.query(`SELECT EXISTS (SELECT 1 FROM erased_subjects WHERE mark = ANY($1::bytea[])) AS erased`, [this.erasureMarks(userId)]);
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
      `INSERT INTO data_keys (user_id, wrapped, kek_id) SELECT $1, $2, $4
        WHERE $3::uuid IS NULL OR EXISTS (SELECT 1 FROM conversations WHERE id = $3 AND user_id = $1 FOR KEY SHARE)
       ON CONFLICT (user_id) DO NOTHING`,
      [userId, this.wrap(userId, randomBytes(32)), whileConversation ?? null, this.current.id],
    );
    return this.dataKey(em, userId, false);
  }

  /** A data key wrapped under the current KEK, bound to its user. */
  wrap(userId: string, key: Buffer): Buffer {
    return seal(this.current.key, key, `dk:${userId}`);
  }

  /** The data key under whichever configured KEK wrapped it (the current one is tried first: after a rotation, most are). */
  unwrap(userId: string, wrapped: Buffer): Buffer {
    for (const kek of this.keks.slice(0, -1)) {
      try {
        return open(kek.key, wrapped, `dk:${userId}`);
      } catch {
        // Not this one (the GCM tag tells at once): the next.
      }
    }
    return open(this.keks.at(-1)!.key, wrapped, `dk:${userId}`);
  }
}
