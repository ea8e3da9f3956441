import { createHash } from 'node:crypto';
import type { EntityManager } from 'typeorm';

/** A stable pseudonym: the restricted copies stay linkable to each other, never back to the person. */
export const pseudonym = (userId: string) => `erased-${createHash('sha256').update(`ally-billing:${userId}`).digest('hex').slice(0, 16)}`;

/** Whether a workspace key is an erased subject's pseudonym (`pseudonym`). */
export const isPseudonym = (workspace: string) => /^erased-[0-9a-f]{16}$/.test(workspace);

/**
 * The rows of workspaces in use, where customers and subscriptions have one
 * per workspace (their unique indexes' predicate, named in ON CONFLICT); a
 * pseudonym may hold several, one per erasure.
 */
export const IN_USE = `workspace NOT LIKE 'erased-%'`;

/**
 * A subject whose whole account billing erased: from then until identity
 * deletes the account (other services' steps may still run), nothing new is
 * set up for them (a Checkout would leave a customer behind the erasure).
 * Kept under the pseudonym only.
 */
export async function markErased(em: Pick<EntityManager, 'query'>, userId: string): Promise<void> {
  await em.query(`INSERT INTO erased_subjects (alias) VALUES ($1) ON CONFLICT DO NOTHING`, [pseudonym(userId)]);
}

export async function isErased(em: Pick<EntityManager, 'query'>, userId: string): Promise<boolean> {
  return (await em.query(`SELECT 1 FROM erased_subjects WHERE alias = $1`, [pseudonym(userId)])).length > 0;
}
