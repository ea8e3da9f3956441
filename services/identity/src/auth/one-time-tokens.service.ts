import { Injectable } from '@nestjs/common';
import { IsNull, MoreThan, type EntityManager } from 'typeorm';
import { ProblemError } from '@ally/contracts';
import { lockSubject } from '@ally/persistence';
import { hashSecret, newSecret } from '../common/secrets.js';
import { OneTimeTokenEntity, type OneTimeTokenPurpose } from './one-time-token.entity.js';

/** Email verification and password reset tokens: stored hashed, single use, expiring. */
@Injectable()
export class OneTimeTokensService {
  /** `newEmail`: the address an `email_change` token confirms. */
  async issue(em: EntityManager, userId: string, purpose: OneTimeTokenPurpose, ttlSeconds: number, newEmail: string | null = null): Promise<{ token: string; expiresAt: Date }> {
    const token = newSecret();
    const expiresAt = new Date(Date.now() + ttlSeconds * 1000);
    await em.getRepository(OneTimeTokenEntity).insert({ tokenHash: hashSecret(token), userId, purpose, expiresAt, usedAt: null, newEmail });
    return { token, expiresAt };
  }

  /** Marks the token used and returns its user; a used, expired or unknown token is a 400. */
  async consume(em: EntityManager, token: string, purpose: OneTimeTokenPurpose): Promise<string> {
    return (await this.consumeAny(em, token, [purpose])).userId;
  }

  /** As `consume`, for a token of any of `purposes` (one link confirms an address, whichever it is): which, and its address. */
  async consumeAny(em: EntityManager, token: string, purposes: OneTimeTokenPurpose[]): Promise<{ userId: string; purpose: OneTimeTokenPurpose; newEmail: string | null }> {
    // The account's row first, then the token's: the order a change request, a reset and an erasure take (the other
    // way round, a link followed while its account changed could deadlock).
    const [owner]: { user_id: string }[] = await em.query(`SELECT user_id FROM one_time_tokens WHERE token_hash = $1`, [hashSecret(token)]);
    if (owner) {
      // The subject's lock first, as an erasure takes it: a reset holding the row while an erasure (that deleted the
      // account's keys) waited for it, and then revoking those keys, deadlocked.
      await lockSubject(em, owner.user_id, 'shared');
      await em.query(`SELECT 1 FROM users WHERE id = $1 FOR UPDATE`, [owner.user_id]);
    }
    const [rows]: [{ user_id: string; purpose: OneTimeTokenPurpose; new_email: string | null }[], number] = await em.query(
      `UPDATE one_time_tokens SET used_at = now() WHERE token_hash = $1 AND purpose = ANY($2::text[]) AND used_at IS NULL AND expires_at > now()
       RETURNING user_id, purpose, new_email`,
      [hashSecret(token), purposes],
    );
    const row = rows[0];
    if (!row) throw new ProblemError(400, 'The token is invalid, expired or already used', { errors: [{ field: 'token', message: 'is invalid, expired or already used' }] });
    return { userId: row.user_id, purpose: row.purpose, newEmail: row.new_email };
  }

  /** How many links of `purpose` the account got within `within` (a Postgres interval), and how many of them are still live. */
  async issuedWithin(em: EntityManager, userId: string, purpose: OneTimeTokenPurpose, within: string): Promise<{ issued: number; live: number }> {
    const [counts] = await em.query(
      `SELECT count(*)::int AS issued, count(*) FILTER (WHERE used_at IS NULL AND expires_at > now())::int AS live
         FROM one_time_tokens WHERE user_id = $1 AND purpose = $2 AND created_at > now() - $3::interval`,
      [userId, purpose, within],
    );
    return counts;
  }

  /** A new reset supersedes older ones; a reset ends all of them. Without `purpose`: every link of the account. */
  async invalidate(em: EntityManager, userId: string, purpose?: OneTimeTokenPurpose): Promise<void> {
    await em.getRepository(OneTimeTokenEntity).update({ userId, ...(purpose ? { purpose } : {}), usedAt: IsNull() }, { usedAt: new Date() });
  }
}
