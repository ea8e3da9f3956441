import type { EntityManager } from 'typeorm';
import { ProblemError, type Actor } from '@ally/contracts';
import { lockSubjects } from '@ally/persistence';

/** Not ended by a logout, a password reset, a reused refresh token or an erasure, and within its absolute lifetime (and `userId`'s, when given). */
export async function isSessionLive(db: Pick<EntityManager, 'query'>, sessionId: string, userId?: string): Promise<boolean> {
  const rows = await db.query(`SELECT 1 FROM sessions WHERE id = $1 AND ($2::uuid IS NULL OR user_id = $2) AND revoked_at IS NULL AND absolute_expires_at > now()`, [
    sessionId,
    userId ?? null,
  ]);
  return rows.length > 0;
}

/**
 * Inside a change of the account (an API key, a setting): the caller's session still lives, read after the
 * account's row is locked. A password reset ends every session while it holds that row: a change that reached
 * identity with a token of before then waits for it and is refused, instead of outliving it (a key made by
 * whoever the reset locked out). A caller with an API key has no session to end.
 */
export async function assertSessionLive(em: Pick<EntityManager, 'query'>, actor: Actor): Promise<void> {
  if (actor.sessionId && !(await isSessionLive(em, actor.sessionId, actor.userId))) throw new ProblemError(401, 'This session has ended; sign in again');
}

/**
 * For a change an organisation sees (an invitation, a removal, its policy, a new one, joining): the caller's
 * account held until it commits and their session still live, as for an API key. The subject's lock comes first,
 * shared, as an erasure takes it (exclusively) before the account's row: holding the row without it deadlocked
 * with an erasure that locked the members first. 401 when the account is gone or the session ended.
 */
export async function holdCallerWithLiveSession(em: Pick<EntityManager, 'query'>, actor: Actor): Promise<void> {
  await lockSubjects(em, [actor.userId], 'shared');
  const [account] = await em.query(`SELECT 1 FROM users WHERE id = $1 FOR SHARE`, [actor.userId]);
  if (!account) throw new ProblemError(401, 'The account no longer exists');
  await assertSessionLive(em, actor);
}
