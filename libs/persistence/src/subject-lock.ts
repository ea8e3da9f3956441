import type { EntityManager } from 'typeorm';

/**
 * A subject's erasure takes their lock exclusively; writing something new for
 * them takes it shared, so the two never interleave: the write waits for the
 * erasure and then sees its mark, or the erasure waits and then deletes what
 * was written. Held until the transaction ends.
 */
export async function lockSubject(em: EntityManager, userId: string, mode: 'shared' | 'exclusive'): Promise<void> {
  await lockSubjects(em, [userId], mode);
}

/** `lockSubject` for several subjects in one statement (a batch of events naming many). */
export async function lockSubjects(em: Pick<EntityManager, 'query'>, userIds: string[], mode: 'shared' | 'exclusive'): Promise<void> {
  await em.query(`SELECT ${mode === 'shared' ? 'pg_advisory_xact_lock_shared' : 'pg_advisory_xact_lock'}(hashtextextended(u, 0)) FROM unnest($1::text[]) AS u`, [userIds]);
}

/**
 * Takes a turn, until the caller's transaction ends, with every transaction
 * that names the same thing (`checkout:<workspace>`, `login-ip:<ip>`…): what
 * they read and write is then never interleaved. Shared turns run together,
 * and only an exclusive one waits for them (and they for it).
 */
export async function lockNamed(em: Pick<EntityManager, 'query'>, name: string, mode: 'shared' | 'exclusive' = 'exclusive'): Promise<void> {
  await em.query(`SELECT ${mode === 'shared' ? 'pg_advisory_xact_lock_shared' : 'pg_advisory_xact_lock'}(hashtext($1))`, [name]);
}

/** `lockNamed`, but only if the turn is free now: false (and nothing taken) when it would have to wait. */
export async function tryLockNamed(em: Pick<EntityManager, 'query'>, name: string, mode: 'shared' | 'exclusive' = 'exclusive'): Promise<boolean> {
  const [{ granted }] = await em.query(`SELECT ${mode === 'shared' ? 'pg_try_advisory_xact_lock_shared' : 'pg_try_advisory_xact_lock'}(hashtext($1)) AS granted`, [name]);
  return granted === true;
}
