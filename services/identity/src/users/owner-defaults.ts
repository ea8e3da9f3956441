import type { EntityManager } from 'typeorm';
import type { AddressHashes } from '../common/address-hash.js';
import type { IdentityOutbox } from '../common/identity-outbox.js';
import { announceResidency } from './residency-event.js';
import { SsoIdentityEntity } from '../sso/sso-identity.entity.js';
import { UserEntity } from './user.entity.js';

/**
 * What a registrant chose before anyone proved control of the address does not
 * bind the owner who proves it now (a password reset, a single sign-on): the
 * EU-only default comes back, or the owner's prompts could leave the EU on a
 * squatter's choice (chat hears of it as of any change of the setting); the
 * single sign-on identities linked to the account go, or the registrant's
 * own identity provider would still sign them in; and the places they signed
 * in from are no longer the account's.
 */
export async function restoreOwnerDefaults(em: EntityManager, outbox: IdentityOutbox, addresses: AddressHashes, user: UserEntity): Promise<void> {
  await em.getRepository(SsoIdentityEntity).delete({ userId: user.id });
  // The places the registrant signed in from are not the owner's: from them a guess would skip the account's
  // lockout and a sign-in send no warning. Their sign-ins stay in the audit, by address only: the account's address
  // (its owner's), not one it had before a move, whose next holder they are nothing to.
  await em.query(`UPDATE sessions SET ip = NULL, user_agent = NULL WHERE user_id = $1`, [user.id]);
  await em.query(`UPDATE login_audit SET user_id = NULL, email_hash = CASE WHEN email_hash = ANY($2::text[]) THEN email_hash END WHERE user_id = $1 AND succeeded`, [
    user.id,
    addresses.all(user.email),
  ]);
  if (user.restrictToEu) return;
  await em.getRepository(UserEntity).update({ id: user.id }, { restrictToEu: true });
  user.restrictToEu = true;
  await outbox.append(
    em,
    'identity.user.settings-changed',
    { userId: user.id, restrictToEu: true, email: user.email, firstName: user.firstName, locale: user.locale },
    { subject: { userId: user.id } },
  );
  await announceResidency(em, outbox, user.id, true);
}
