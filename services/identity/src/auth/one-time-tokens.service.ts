import { Injectable } from '@nestjs/common';
import { IsNull, MoreThan, type EntityManager } from 'typeorm';
import { ProblemError } from '@ally/contracts';
import { hashSecret, newSecret } from '../common/secrets.js';
import { OneTimeTokenEntity, type OneTimeTokenPurpose } from './one-time-token.entity.js';

/** Email verification and password reset tokens: stored hashed, single use, expiring. */
@Injectable()
export class OneTimeTokensService {
  async issue(em: EntityManager, userId: string, purpose: OneTimeTokenPurpose, ttlSeconds: number): Promise<string> {
    const token = newSecret();
    await em.getRepository(OneTimeTokenEntity).insert({
      tokenHash: hashSecret(token),
      userId,
      purpose,
      expiresAt: new Date(Date.now() + ttlSeconds * 1000),
      usedAt: null,
    });
    return token;
  }

  /** Marks the token used and returns its user; a used, expired or unknown token is a 400. */
  async consume(em: EntityManager, token: string, purpose: OneTimeTokenPurpose): Promise<string> {
    const result = await em
      .getRepository(OneTimeTokenEntity)
      .createQueryBuilder()
      .update()
      .set({ usedAt: () => 'now()' })
      .where({ tokenHash: hashSecret(token), purpose, usedAt: IsNull(), expiresAt: MoreThan(new Date()) })
      .returning(['userId'])
      .execute();
    const row = result.raw[0] as { user_id?: string; userId?: string } | undefined;
    if (!row) throw new ProblemError(400, 'The token is invalid, expired or already used', { errors: [{ field: 'token', message: 'is invalid, expired or already used' }] });
    return row.user_id ?? row.userId!;
  }

  /** A new reset supersedes older ones; a reset ends all of them. */
  async invalidate(em: EntityManager, userId: string, purpose: OneTimeTokenPurpose): Promise<void> {
    await em.getRepository(OneTimeTokenEntity).update({ userId, purpose, usedAt: IsNull() }, { usedAt: new Date() });
  }
}
