import type { EntityManager } from 'typeorm';

/**
 * Serialises what changes a subject's set of requests within the caller's
 * transaction: filing one, deciding one, and their erasure finishing (which
 * ends the others and clears the outbox of them).
 */
export async function lockSubjectRequests(em: EntityManager, userId: string): Promise<void> {
  await em.query(`SELECT pg_advisory_xact_lock(hashtext($1))`, [`privacy-request:${userId}`]);
}
