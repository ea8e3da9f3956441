import type { EntityManager } from 'typeorm';
import { lockNamed } from '@ally/persistence';

/**
 * Serialises what changes a subject's set of requests within the caller's
 * transaction: filing one, deciding one, and their erasure finishing (which
 * ends the others and clears the outbox of them).
 */
export async function lockSubjectRequests(em: EntityManager, userId: string): Promise<void> {
  await lockNamed(em, `privacy-request:${userId}`);
}

/** Whether the subject's erasure has finished (its tombstone is kept): asked under `lockSubjectRequests`, which a finishing erasure holds. */
export async function erasureFinished(em: EntityManager, subjectHash: string): Promise<boolean> {
  return (await em.query(`SELECT 1 FROM tombstones WHERE subject_hash = $1`, [subjectHash])).length > 0;
}
