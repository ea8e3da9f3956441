import { Inject, Injectable } from '@nestjs/common';
import { DataSource, IsNull, type EntityManager } from 'typeorm';
import { randomUUID } from 'node:crypto';
import { decodeCursor, keysetPage, limitReached, ProblemError, type Actor, type ApiKeyCreated, type ApiKeyIdentity, type ApiKeySummary, type Page } from '@ally/contracts';
import { isForeignKeyViolation, lockNamed } from '@ally/persistence';
import { IDENTITY_CONFIG, type IdentityConfig } from '../config.js';
import { hashSecret, newSecret } from '../common/secrets.js';
import { holdCallerWithLiveSession } from '../sessions/live-session.js';
import { MembershipEntity } from '../orgs/membership.entity.js';
import { UserEntity } from '../users/user.entity.js';
import { ApiKeyEntity } from './api-key.entity.js';

export const API_KEY_PREFIX = 'ally_';

/** API keys act for their user in one workspace; shown once, stored as a hash. */
@Injectable()
export class ApiKeysService {
  constructor(
    private readonly ds: DataSource,
    @Inject(IDENTITY_CONFIG) private readonly config: IdentityConfig,
  ) {}

  async create(actor: Actor, input: { name: string; workspace: string }): Promise<ApiKeyCreated> {
    if (actor.apiKeyWorkspace) throw new ProblemError(403, 'An API key cannot create API keys');
    const key = `${API_KEY_PREFIX}${newSecret()}`;
    const row = this.ds.getRepository(ApiKeyEntity).create({
      id: randomUUID(),
      userId: actor.userId,
      name: input.name,
      workspace: input.workspace,
      prefix: key.slice(0, 10),
      keyHash: hashSecret(key),
      lastUsedAt: null,
      revokedAt: null,
    });
    const createdAt = await this.ds.transaction(async (em) => {
      // A password reset under way (it holds the account's row) is waited for, and ends this caller's session first.
      await holdCallerWithLiveSession(em, actor);
      if (input.workspace !== 'private') {
        // FOR SHARE: a removal of this membership waits for the key, and its revocation of the workspace's keys then sees it
        // (read unlocked, a key created while the member was removed outlived the membership, and worked again after a re-invitation).
        const [member] = await em.query(`SELECT 1 FROM memberships WHERE org_id = $1 AND user_id = $2 FOR SHARE`, [input.workspace, actor.userId]);
        if (!member) throw new ProblemError(404, 'Workspace not found', { errors: [{ field: 'workspace', message: 'is not a workspace of yours' }] });
      }
      // Counted in turn with the user's other new keys: each is a credential (and a rate-limit budget) of its own.
      await lockNamed(em, `api-keys:${actor.userId}`);
      const [{ live }] = await em.query(`SELECT count(*)::int AS live FROM api_keys WHERE user_id = $1 AND revoked_at IS NULL`, [actor.userId]);
      if (live >= this.config.MAX_API_KEYS_PER_USER) {
        throw limitReached(`You have ${this.config.MAX_API_KEYS_PER_USER} API keys, the most one account may; revoke one you no longer use (DELETE /v1/me/api-keys/:id)`);
      }
      // The database's time, as the list shows it (to the millisecond).
      const { generatedMaps } = await em.getRepository(ApiKeyEntity).insert(row);
      return generatedMaps[0].createdAt as Date;
    }).catch((err) => {
      // The account was erased while its access token still lived (the gateway checks sessions every SESSION_CHECK_SECONDS).
      throw isForeignKeyViolation(err) ? new ProblemError(401, 'The account no longer exists') : err;
    });
    return { id: row.id, name: row.name, workspace: row.workspace, key, createdAt: createdAt.toISOString() };
  }

  /**
   * The caller's live keys, newest first, a page at a time. The keyset is the
   * creation time to the millisecond (what a cursor holds; Postgres keeps
   * microseconds) and the id, so no key is skipped or repeated between pages.
   */
  async list(actor: Actor, limit: number, cursor?: string): Promise<Page<ApiKeySummary>> {
    const after = decodeCursor(cursor);
    const rows: ApiKeyEntity[] = await this.ds
      .getRepository(ApiKeyEntity)
      .createQueryBuilder('k')
      .where('k.user_id = :user AND k.revoked_at IS NULL', { user: actor.userId })
      .andWhere(after ? `(date_trunc('milliseconds', k.created_at), k.id) < (:at, :id)` : 'TRUE', after ?? {})
      .orderBy(`date_trunc('milliseconds', k.created_at)`, 'DESC')
      .addOrderBy('k.id', 'DESC')
      .limit(limit + 1)
      .getMany();
    const { page, nextCursor } = keysetPage(rows, limit, (r) => [r.createdAt, r.id]);
    return {
      data: page.map((r) => ({ id: r.id, name: r.name, workspace: r.workspace, prefix: r.prefix, createdAt: r.createdAt.toISOString(), lastUsedAt: r.lastUsedAt?.toISOString() ?? null })),
      nextCursor,
    };
  }

  async revoke(actor: Actor, id: string): Promise<void> {
    const result = await this.ds.getRepository(ApiKeyEntity).update({ id, userId: actor.userId, revokedAt: IsNull() }, { revokedAt: new Date() });
    if (!result.affected) throw new ProblemError(404, 'API key not found');
  }

  /** Every live key of the user (e.g. when someone else proves to own the account's address); inside the caller's transaction. */
  async revokeAllForUser(em: EntityManager, userId: string): Promise<void> {
    await em.getRepository(ApiKeyEntity).update({ userId, revokedAt: IsNull() }, { revokedAt: new Date() });
  }

  /** Called by the gateway for `Bearer ally_…`; a revoked key, or one whose workspace membership ended, fails. */
  async verify(key: string): Promise<ApiKeyIdentity> {
    const invalid = new ProblemError(401, 'The API key is invalid or revoked');
    if (!key.startsWith(API_KEY_PREFIX)) throw invalid;
    const row = await this.ds.getRepository(ApiKeyEntity).findOneBy({ keyHash: hashSecret(key), revokedAt: IsNull() });
    if (!row) throw invalid;
    if (row.workspace !== 'private') {
      const member = await this.ds.getRepository(MembershipEntity).findOneBy({ orgId: row.workspace, userId: row.userId });
      if (!member) throw invalid;
    }
    const user = await this.ds.getRepository(UserEntity).findOneBy({ id: row.userId });
    if (!user) throw invalid;
    // Coarse last-use tracking; one write per minute at most.
    if (!row.lastUsedAt || Date.now() - row.lastUsedAt.getTime() > 60_000) {
      await this.ds.getRepository(ApiKeyEntity).update({ id: row.id }, { lastUsedAt: new Date() });
    }
    return { userId: row.userId, workspace: row.workspace, platformRoles: user.platformRoles };
  }
}
