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
