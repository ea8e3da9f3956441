import { Inject, Injectable } from '@nestjs/common';
import { DataSource, IsNull, type EntityManager } from 'typeorm';
import { randomUUID } from 'node:crypto';
import { ProblemError, type RequestMeta, type TokenPair } from '@ally/contracts';
import { IDENTITY_CONFIG, type IdentityConfig } from '../config.js';
import { IdentityOutbox } from '../common/identity-outbox.js';
import { hashSecret, newSecret } from '../common/secrets.js';
import { SigningKeysService } from '../signing-keys/signing-keys.service.js';
import type { UserEntity } from '../users/user.entity.js';
import { isSessionLive } from './live-session.js';
import { LoginThrottleService } from './login-throttle.service.js';
import { RefreshTokenEntity } from './refresh-token.entity.js';
import { SessionEntity } from './session.entity.js';

const REFRESH_PREFIX = 'rt_';

/**
 * Sessions are refresh-token families. Each refresh rotates the token; a
 * rotated token presented again means it was stolen or replayed, so the
 * whole family is revoked.
 */
@Injectable()
export class SessionsService {
  constructor(
    private readonly ds: DataSource,
    private readonly keys: SigningKeysService,
    private readonly outbox: IdentityOutbox,
    private readonly throttle: LoginThrottleService,
    @Inject(IDENTITY_CONFIG) private readonly config: IdentityConfig,
  ) {}

  async open(em: EntityManager, user: UserEntity, method: 'password' | 'sso', meta?: RequestMeta): Promise<TokenPair> {
    const now = new Date();
    // While the login audit does not name the user (objection, restriction), their sessions do not keep where they signed in from either.
    const paused = await this.throttle.auditPaused(user.id, em);
    const session = em.getRepository(SessionEntity).create({
      id: randomUUID(),
      userId: user.id,
      method,
      ip: paused ? null : (meta?.ip ?? null),
      userAgent: paused ? null : (meta?.userAgent?.slice(0, 300) ?? null),
      lastUsedAt: now,
      absoluteExpiresAt: new Date(now.getTime() + this.config.SESSION_ABSOLUTE_TTL_SECONDS * 1000),
      revokedAt: null,
      revokedReason: null,
    });
    await em.getRepository(SessionEntity).insert(session);
    return this.issue(em, session.id, user);
  }

  /** A successful sign-in: a new session, and an event so notify can warn about an unknown IP. */
  async signIn(em: EntityManager, user: UserEntity, method: 'password' | 'sso', knownIp: boolean, meta?: RequestMeta): Promise<TokenPair> {
    // The account as it is now, held until this session is in: a password reset or a role change that committed
    // while the password was being checked ended only the sessions that existed then, so this one must not open
    // on what was read before it; one that comes after ends this session too.
    const [now]: { password_hash: string | null; platform_roles: string[] }[] = await em.query(`SELECT password_hash, platform_roles FROM users WHERE id = $1 FOR SHARE`, [user.id]);
    if (!now || now.password_hash !== user.passwordHash || [...now.platform_roles].sort().join() !== [...user.platformRoles].sort().join()) {
      throw new ProblemError(401, 'The account changed while you were signing in (a new password, or other roles); sign in again');
    }
    const pair = await this.open(em, user, method, meta);
    await this.outbox.append(
      em,
      'identity.user.signed-in',
      // The address, name and IP only for the warning they are needed for: the stream and the outbox keep events for days.
      knownIp ? { userId: user.id, method, newDevice: false } : { userId: user.id, method, newDevice: true, email: user.email, firstName: user.firstName, locale: user.locale, ip: meta?.ip ?? null },
      { subject: { userId: user.id }, correlationId: meta?.correlationId },
    );
    return pair;
  }

  async refresh(refreshToken: string): Promise<TokenPair> {
    const invalid = () => new ProblemError(401, 'The refresh token is invalid or expired');
    if (!refreshToken.startsWith(REFRESH_PREFIX)) throw invalid();
    const outcome = await this.ds.transaction(async (em) => {
      const token = await em
        .getRepository(RefreshTokenEntity)
        .createQueryBuilder('t')
        .setLock('pessimistic_write')
        .where('t.token_hash = :h', { h: hashSecret(refreshToken) })
        .getOne();
      if (!token) return { error: invalid() };
      const session = await em.getRepository(SessionEntity).findOne({ where: { id: token.sessionId }, lock: { mode: 'pessimistic_write' } });
      if (!session || session.revokedAt) return { error: invalid() };
      if (token.rotatedAt) {
        await this.revoke(em, session.id, 'refresh token reuse');
        return { error: new ProblemError(401, 'This refresh token was already used; every token of this sign-in has been revoked') };
      }
      const now = Date.now();
      const idleExpired = now - session.lastUsedAt.getTime() > this.config.SESSION_IDLE_TTL_SECONDS * 1000;
      if (idleExpired || now > session.absoluteExpiresAt.getTime()) {
        await this.revoke(em, session.id, idleExpired ? 'idle timeout' : 'absolute lifetime reached');
        return { error: new ProblemError(401, 'The session has expired; please sign in again') };
      }
      await em.getRepository(RefreshTokenEntity).update({ tokenHash: token.tokenHash }, { rotatedAt: new Date() });
      await em.getRepository(SessionEntity).update({ id: session.id }, { lastUsedAt: new Date() });
      const user = await em.query(`SELECT id, platform_roles FROM users WHERE id = $1`, [session.userId]);
      return { pair: await this.issue(em, session.id, { id: user[0].id, platformRoles: user[0].platform_roles } as UserEntity) };
    });
    // Reuse revokes the family and must commit before we answer 401.
    if ('error' in outcome) throw outcome.error;
    return outcome.pair!;
  }

  /** Ends the session the token belongs to; unknown tokens are ignored (logout is idempotent). */
  async logout(refreshToken: string): Promise<void> {
    await this.ds.transaction(async (em) => {
      const token = await em.getRepository(RefreshTokenEntity).findOne({ where: { tokenHash: hashSecret(refreshToken) } });
      if (token) await this.revoke(em, token.sessionId, 'logout');
    });
  }

  isLive(sessionId: string): Promise<boolean> {
    return isSessionLive(this.ds, sessionId);
  }

  async revokeAllForUser(em: EntityManager, userId: string, reason: string): Promise<void> {
    await em.getRepository(SessionEntity).update({ userId, revokedAt: IsNull() }, { revokedAt: new Date(), revokedReason: reason });
  }

  private async revoke(em: EntityManager, sessionId: string, reason: string): Promise<void> {
    await em.getRepository(SessionEntity).update({ id: sessionId, revokedAt: IsNull() }, { revokedAt: new Date(), revokedReason: reason });
  }

  private async issue(em: EntityManager, sessionId: string, user: Pick<UserEntity, 'id' | 'platformRoles'>): Promise<TokenPair> {
    const refreshToken = `${REFRESH_PREFIX}${newSecret()}`;
    await em.getRepository(RefreshTokenEntity).insert({ tokenHash: hashSecret(refreshToken), sessionId, rotatedAt: null });
    const accessToken = await this.keys.sign({ sub: user.id, sid: sessionId, roles: user.platformRoles });
    return { accessToken, refreshToken, expiresIn: this.config.ACCESS_TOKEN_TTL_SECONDS, tokenType: 'Bearer' };
  }
}
