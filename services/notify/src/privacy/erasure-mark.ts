import { createHash } from 'node:crypto';
import type { EntityManager } from 'typeorm';
import { lockSubject } from '@ally/persistence';

/** How notify remembers an erased subject for a while without keeping their id. */
export const erasureMark = (userId: string): string => createHash('sha256').update(`erased:${userId}`).digest('hex');

/** Whether the subject was erased here: an event about them published before brings nothing of them back. The lock orders this against the erasure. */
export async function isErasedSubject(em: EntityManager, userId: string): Promise<boolean> {
  await lockSubject(em, userId, 'shared');
  const [{ erased }] = await em.query(`SELECT EXISTS (SELECT 1 FROM erased_subjects WHERE mark = $1) AS erased`, [erasureMark(userId)]);
  return erased;
}
