import type { EntityManager } from 'typeorm';
import { lockNamed, tryLockNamed } from '@ally/persistence';

/**
 * Whom retention spares changes only between the slices of a run: a run reads
 * the held set and has a service delete one slice under this lock, shared;
 * placing a legal hold or filing a restriction takes it exclusively. So a hold
 * answers only once no slice read without it is deleting, and every later
 * slice spares its subject: what they had when it answered stays.
 */
export async function lockHeldSet(em: Pick<EntityManager, 'query'>, mode: 'shared' | 'exclusive'): Promise<void> {
  await lockNamed(em, HELD_SET, mode);
}

/**
 * The lock shared if it is free now, for a worker that can come back at its next poll: waiting would queue it
 * behind a hold being placed, itself waiting for a retention slice, and stall every later claim as long.
 */
export function tryLockHeldSetShared(em: Pick<EntityManager, 'query'>): Promise<boolean> {
  return tryLockNamed(em, HELD_SET, 'shared');
}

const HELD_SET = 'privacy-held-set';
