import type { EntityManager } from 'typeorm';
import type { IdentityOutbox } from '../common/identity-outbox.js';
import { announceResidency } from './residency-event.js';
import { SsoIdentityEntity } from '../sso/sso-identity.entity.js';
import { UserEntity } from './user.entity.js';

/**
 * What a registrant chose before anyone proved control of the address does not
 * bind the owner who proves it now (a password reset, a single sign-on): the
 * EU-only default comes back, or the owner's prompts could leave the EU on a
 * squatter's choice (chat hears of it as of any change of the setting), and
 * the single sign-on identities linked to the account go, or the registrant's
 * own identity provider would still sign them in.
 */
export async function restoreOwnerDefaults(em: EntityManager, outbox: IdentityOutbox, user: UserEntity): Promise<void> {
  await em.getRepository(SsoIdentityEntity).delete({ userId: user.id });
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
