import type { EntityManager } from 'typeorm';
import type { IdentityOutbox } from '../common/identity-outbox.js';

/**
 * The user's "EU models only" setting as it now is, for chat's routing
 * replica: the user's id and the setting, nothing else. Registration and a
 * change also write notify's events, which carry the address, the name (and a
 * verification token) for a mail; chat reads none of those.
 */
export async function announceResidency(em: EntityManager, outbox: IdentityOutbox, userId: string, restrictToEu: boolean, correlationId?: string): Promise<void> {
  await outbox.append(em, 'identity.user.residency-set', { userId, restrictToEu }, { subject: { userId }, correlationId });
}
