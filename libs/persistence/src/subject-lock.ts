import type { EntityManager } from 'typeorm';

/**
 * A subject's erasure takes their lock exclusively; writing something new for
 * them takes it shared, so the two never interleave: the write waits for the
 * erasure and then sees its mark, or the erasure waits and then deletes what
 * was written. Held until the transaction ends.
 */
export async function lockSubject(em: EntityManager, userId: string, mode: 'shared' | 'exclusive'): Promise<void> {
  await em.query(`SELECT ${mode === 'shared' ? 'pg_advisory_xact_lock_shared' : 'pg_advisory_xact_lock'}(hashtextextended($1, 0))`, [userId]);
}
