import type { EntityManager } from 'typeorm';
import { lockNamed } from '@ally/persistence';

/**
 * Whom retention spares changes only between the slices of a run: a run reads
 * the held set and has a service delete one slice under this lock, shared;
 * placing a legal hold or filing a restriction takes it exclusively. So a hold
 * answers only once no slice read without it is deleting, and every later
 * slice spares its subject: what they had when it answered stays.
 */
export async function lockHeldSet(em: Pick<EntityManager, 'query'>, mode: 'shared' | 'exclusive'): Promise<void> {
  await lockNamed(em, 'privacy-held-set', mode);
}
