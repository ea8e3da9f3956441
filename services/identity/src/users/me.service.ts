import { Inject, Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { ProblemError, type Actor, type Me, type RequestMeta, type Routing } from '@ally/contracts';
import { OneTimeTokensService } from '../auth/one-time-tokens.service.js';
import { PasswordService } from '../auth/password.service.js';
import { IdentityOutbox } from '../common/identity-outbox.js';
import { IDENTITY_CONFIG, type IdentityConfig } from '../config.js';
import { LoginThrottleService } from '../sessions/login-throttle.service.js';
import { emailTaken } from './email-taken.js';
import { assertSessionLive } from '../sessions/live-session.js';
import { announceResidency } from './residency-event.js';
import { UserEntity } from './user.entity.js';
import { UsersRepository } from './users.repository.js';

/** Address changes one account may ask for in 24 hours (each mails a link to the address it names). */
const EMAIL_CHANGES_PER_DAY = 5;

@Injectable()
export class MeService {
  constructor(
    private readonly ds: DataSource,
    private readonly users: UsersRepository,
    private readonly outbox: IdentityOutbox,
    private readonly passwords: PasswordService,
    private readonly tokens: OneTimeTokensService,
    private readonly throttle: LoginThrottleService,
    @Inject(IDENTITY_CONFIG) private readonly config: IdentityConfig,
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

  /**
   * Rectification of the address (Art. 16 GDPR): a link goes to the new address, and the account moves to it
   * when the link is followed (`AuthService.verifyEmail`), never before; a new request replaces the one before.
   */
  async requestEmailChange(actor: Actor, input: { email: string; password?: string }, meta?: RequestMeta): Promise<{ email: string; expiresAt: string }> {
    const userId = actor.userId;
    const user = await this.users.findById(userId);
    if (!user) throw new ProblemError(401, 'The account no longer exists');
    // A session left open on someone else's screen must not move the account to another address: the password
    // proves its holder. An account without one (single sign-on) sets one first, through a link to its address.
    if (!user.passwordHash) {
      throw new ProblemError(403, 'This account signs in through single sign-on and has no password: set one first (POST /v1/auth/password/forgot), then change the address');
    }
    if (!input.password) throw new ProblemError(400, 'Your current password is needed to change the address', { errors: [{ field: 'password', message: 'is required' }] });
    // Counted as a sign-in attempt is: guesses through this route meet the same limits.
    const attempt = await this.throttle.begin(user.email, meta?.ip, 'email-change');
    const ok = await this.passwords.verify(user.passwordHash, input.password);
    await this.throttle.finish(attempt, { userId, ip: meta?.ip, succeeded: ok });
    if (!ok) throw new ProblemError(403, 'The password is wrong', { errors: [{ field: 'password', message: 'is wrong' }] });
    if (user.email.toLowerCase() === input.email.toLowerCase()) {
      throw new ProblemError(400, 'This is already the address of your account', { errors: [{ field: 'email', message: 'is already your address' }] });
    }
    return this.ds.transaction(async (em) => {
      // Locked: requests of one account take turns, so only the newest link is live.
      if (!(await this.users.findForUpdate(userId, em))) throw new ProblemError(401, 'The account no longer exists');
      await assertSessionLive(em, actor);
      // Each request mails an address the account names: a few a day mend a typo, more would mail strangers.
      const { issued } = await this.tokens.issuedWithin(em, userId, 'email_change', '1 day');
      if (issued >= EMAIL_CHANGES_PER_DAY) {
        throw new ProblemError(429, `This account asked to change its address ${issued} times in the last 24 hours, the most it may; try again tomorrow`, { retryAfter: 3600 });
      }
      if (await this.users.findByEmail(input.email, em)) throw emailTaken();
      await this.tokens.invalidate(em, userId, 'email_change');
      const ttl = this.config.VERIFICATION_TOKEN_TTL_SECONDS;
      const { token, expiresAt } = await this.tokens.issue(em, userId, 'email_change', ttl, input.email);
      await this.outbox.append(
        em,
        'identity.user.email-change-requested',
        { userId, newEmail: input.email, firstName: user.firstName, locale: user.locale, token, validForSeconds: ttl },
        { subject: { userId } },
      );
      return { email: input.email, expiresAt: expiresAt.toISOString() };
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
