import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { ProblemError, type Actor, type Me, type Routing } from '@ally/contracts';
import { IdentityOutbox } from '../common/identity-outbox.js';
import { assertSessionLive } from '../sessions/live-session.js';
import { announceResidency } from './residency-event.js';
import { UserEntity } from './user.entity.js';
import { UsersRepository } from './users.repository.js';

@Injectable()
export class MeService {
  constructor(
    private readonly ds: DataSource,
    private readonly users: UsersRepository,
    private readonly outbox: IdentityOutbox,
  ) {}

  async get(userId: string): Promise<Me> {
    const me = await this.users.findMe(userId);
    if (!me) throw new ProblemError(401, 'The account no longer exists');
    return me;
  }

  async routing(userId: string): Promise<Routing> {
    const me = await this.get(userId);
    return { id: me.id, restrictToEu: me.settings.restrictToEu, memberships: me.memberships.map(({ orgId, role }) => ({ orgId, role })) };
  }

  /** Rectification (Art. 16 GDPR). */
  async update(userId: string, input: Partial<Pick<UserEntity, 'firstName' | 'lastName' | 'locale'>>): Promise<Me> {
    return this.ds.transaction(async (em) => {
      const user = await this.users.findForUpdate(userId, em);
      if (!user) throw new ProblemError(401, 'The account no longer exists');
      // Only what differs is a rectification: privacy records it.
      const changed = (Object.keys(input) as (keyof typeof input)[]).filter((k) => input[k] !== undefined && input[k] !== user[k]);
      if (changed.length) {
        Object.assign(user, input);
        // Only these columns: the rest of the row is not this call's to write.
        await em.getRepository(UserEntity).update({ id: userId }, Object.fromEntries(changed.map((k) => [k, input[k]])));
        await this.outbox.append(em, 'identity.user.updated', { userId, changed }, { subject: { userId } });
      }
      return this.users.toMe(user, em);
    });
  }

  async updateSettings(actor: Actor, settings: { restrictToEu: boolean }): Promise<Me['settings']> {
    const userId = actor.userId;
    return this.ds.transaction(async (em) => {
      // Locked: settings changed at once are applied, and their events written, one after the other.
      const user = await this.users.findForUpdate(userId, em);
      if (!user) throw new ProblemError(401, 'The account no longer exists');
      // A password reset that held the row meanwhile ended the caller's session: its owner's defaults stand.
      await assertSessionLive(em, actor);
      if (user.restrictToEu !== settings.restrictToEu) {
        await em.getRepository(UserEntity).update({ id: userId }, { restrictToEu: settings.restrictToEu });
        await this.outbox.append(
          em,
          'identity.user.settings-changed',
          { userId, restrictToEu: settings.restrictToEu, email: user.email, firstName: user.firstName, locale: user.locale },
          { subject: { userId } },
        );
        await announceResidency(em, this.outbox, userId, settings.restrictToEu);
      }
      return { restrictToEu: settings.restrictToEu };
    });
  }
}
