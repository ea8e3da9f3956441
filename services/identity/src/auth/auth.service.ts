import { Inject, Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { ProblemError, registerInput, type RegisterReply, type RequestMeta, type TokenPair } from '@ally/contracts';
import { isForeignKeyViolation, lockNamed } from '@ally/persistence';
import { IDENTITY_CONFIG, type IdentityConfig } from '../config.js';
import { ApiKeysService } from '../api-keys/api-keys.service.js';
import { preferredLocale } from '../common/accept-language.js';
import { AddressHashes } from '../common/address-hash.js';
import { IdentityOutbox } from '../common/identity-outbox.js';
import { restoreOwnerDefaults } from '../users/owner-defaults.js';
import { announceResidency } from '../users/residency-event.js';
import { OrgsService } from '../orgs/orgs.service.js';
import { LoginThrottleService } from '../sessions/login-throttle.service.js';
import { SessionsService } from '../sessions/sessions.service.js';
import { setUpWithoutProof, UserEntity } from '../users/user.entity.js';
import { UsersRepository } from '../users/users.repository.js';
import { emailTaken } from '../users/email-taken.js';
import { OneTimeTokensService } from './one-time-tokens.service.js';
import { PasswordService } from './password.service.js';

/** Password reset links one account gets in an hour (each request beyond changes nothing). */
const RESET_LINKS_PER_HOUR = 3;

@Injectable()
export class AuthService {
  /** Verified against when the account is unknown, so timing does not reveal which addresses exist. */
  private dummyHash?: Promise<string>;

  constructor(
    private readonly ds: DataSource,
    private readonly users: UsersRepository,
    private readonly passwords: PasswordService,
    private readonly tokens: OneTimeTokensService,
    private readonly sessions: SessionsService,
    private readonly throttle: LoginThrottleService,
    private readonly orgs: OrgsService,
    private readonly apiKeys: ApiKeysService,
    private readonly outbox: IdentityOutbox,
    private readonly addresses: AddressHashes,
    @Inject(IDENTITY_CONFIG) private readonly config: IdentityConfig,
  ) {}

  async register(input: z.infer<typeof registerInput>, meta?: RequestMeta): Promise<RegisterReply> {
    this.passwords.assertAcceptable(input.password, [input.email.split('@')[0], input.firstName, input.lastName]);
    const passwordHash = await this.passwords.hash(input.password);
    return this.ds.transaction(async (em) => {
      const user = em.getRepository(UserEntity).create({
        id: randomUUID(),
        email: input.email,
        firstName: input.firstName,
        lastName: input.lastName,
        locale: input.locale ?? preferredLocale(meta?.acceptLanguage) ?? 'de',
        emailVerifiedAt: null,
        passwordHash,
        platformRoles: [],
        restrictToEu: true,
      });
      await this.users.lockAddress(user.email, em);
      if (!(await this.users.insertIfAddressFree(user, em))) throw emailTaken();
      const { token: verificationToken } = await this.tokens.issue(em, user.id, 'verify_email', this.config.VERIFICATION_TOKEN_TTL_SECONDS);
      await this.outbox.append(
        em,
        'identity.user.registered',
        { userId: user.id, email: user.email, firstName: user.firstName, locale: user.locale, verificationToken, restrictToEu: true, validForSeconds: this.config.VERIFICATION_TOKEN_TTL_SECONDS },
        { subject: { userId: user.id }, correlationId: meta?.correlationId },
      );
      await announceResidency(em, this.outbox, user.id, true, meta?.correlationId);
      if (input.organizationName) await this.orgs.createInTx(em, user, input.organizationName, meta);
      const pair = await this.sessions.open(em, user, 'password', meta);
      return { user: await this.users.toMe(user, em), ...pair };
    });
  }

  /** A registration's confirmation link, or an address change's (`MeService.requestEmailChange`): both prove the address. */
  async verifyEmail(token: string): Promise<void> {
    await this.ds.transaction(async (em): Promise<void> => {
      const { userId, purpose, newEmail } = await this.tokens.consumeAny(em, token, ['verify_email', 'email_change']);
      if (purpose === 'email_change') return this.changeEmail(em, userId, newEmail!);
      const user = await this.users.findById(userId, em);
      if (!user) throw new ProblemError(400, 'The token is invalid, expired or already used');
      if (user.emailVerifiedAt) return;
      await em.getRepository(UserEntity).update({ id: userId }, { emailVerifiedAt: new Date() });
      await this.outbox.append(em, 'identity.user.verified', { userId, email: user.email, firstName: user.firstName, locale: user.locale, restrictToEu: user.restrictToEu }, { subject: { userId } });
    });
  }

  async login(email: string, password: string, meta?: RequestMeta): Promise<TokenPair> {
    const attempt = await this.throttle.begin(email, meta?.ip, 'password');
    const user = await this.users.findByEmail(email);
    const ok = user?.passwordHash
      ? await this.passwords.verify(user.passwordHash, password)
      : await this.passwords.verify(await this.dummy(), password).then(() => false);
    const wrong = () => new ProblemError(401, 'Email address or password is wrong');
    try {
      if (!user || !ok) {
        await this.throttle.finish(attempt, { userId: user?.id ?? null, ip: meta?.ip, succeeded: false });
        throw wrong();
      }
      const knownIp = await this.throttle.isKnownIp(user.id, meta?.ip);
      await this.throttle.finish(attempt, { userId: user.id, ip: meta?.ip, succeeded: true });
      // Costs raised since it was made: the password is at hand now, and an old, cheaper hash would stay weaker (and faster to
      // check, which tells an address with an account from one without). Only if no reset replaced it meanwhile.
      if (this.passwords.isStale(user.passwordHash!)) {
        const fresh = await this.passwords.hash(password);
        const [, rehashed] = await this.ds.query(`UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2`, [user.id, user.passwordHash, fresh]);
        // The session checks the account did not change while it was read: this change is the sign-in's own.
        if (rehashed === 1) user.passwordHash = fresh;
      }
      return await this.ds.transaction((em) => this.sessions.signIn(em, user, 'password', knownIp, meta));
    } catch (err) {
      // The account was erased while its password was being checked: no account, as for any unknown address (was a 500).
      throw isForeignKeyViolation(err) ? wrong() : err;
    }
  }

  /** Always answers the same, so it cannot be used to find out who has an account. */
  async forgotPassword(email: string, meta?: RequestMeta): Promise<void> {
    const user = await this.users.findByEmail(email);
    if (!user) return;
    await this.ds.transaction(async (em) => {
      // Requests for one account take turns, so only the newest link is live (two at once left two).
      await lockNamed(em, `password-reset:${user.id}`);
      // Anyone may ask for the address: past a few links an hour, a request changes nothing while the last one is
      // still live (it was mailed), so a flood neither buries the owner's link nor fills their inbox. Once it is
      // used or ended (an address change), the next request makes one again.
      const { issued, live } = await this.tokens.issuedWithin(em, user.id, 'password_reset', '1 hour');
      if (issued >= RESET_LINKS_PER_HOUR && live > 0) return;
      await this.tokens.invalidate(em, user.id, 'password_reset');
      const { token: resetToken } = await this.tokens.issue(em, user.id, 'password_reset', this.config.RESET_TOKEN_TTL_SECONDS);
      await this.outbox.append(
        em,
        'identity.password.reset-requested',
        { userId: user.id, email: user.email, firstName: user.firstName, locale: user.locale, resetToken, validForSeconds: this.config.RESET_TOKEN_TTL_SECONDS },
        { subject: { userId: user.id }, correlationId: meta?.correlationId },
      );
    });
  }

  async resetPassword(token: string, password: string): Promise<void> {
    await this.ds.transaction(async (em) => {
      const userId = await this.tokens.consume(em, token, 'password_reset');
      const user = await this.users.findById(userId, em);
      if (!user) throw new ProblemError(400, 'The token is invalid, expired or already used');
      // A reset ends every other reset link of the account: whoever holds one cannot take it back afterwards; nor can
      // whoever asked to move the account to their address (with a session and the password a reset now replaces).
      await this.tokens.invalidate(em, userId, 'password_reset');
      await this.tokens.invalidate(em, userId, 'email_change');
      this.passwords.assertAcceptable(password, [user.email.split('@')[0], user.firstName, user.lastName]);
      // Following the reset link proves control of the address.
      const now = new Date();
      await em.getRepository(UserEntity).update({ id: userId }, { passwordHash: await this.passwords.hash(password), emailVerifiedAt: user.emailVerifiedAt ?? now, passwordProvenAt: now });
      await this.sessions.revokeAllForUser(em, userId, 'password reset');
      // Until now whoever set the account up may not be the address's owner (an account squatted before its owner
      // signed up, its confirmation link clicked by the owner since): their API keys go with their password and
      // sessions, and the owner starts from the defaults. A password chosen through a reset link proved the address.
      if (setUpWithoutProof(user)) {
        await this.apiKeys.revokeAllForUser(em, userId);
        await restoreOwnerDefaults(em, this.outbox, this.addresses, user);
      }
    });
  }

  /**
   * The new address, confirmed by its link, takes the old one's place (rectification, Art. 16 GDPR: privacy records
   * it); the old address hears of it, so a change its owner did not make is seen. Other links of the account were
   * sent to the old address: they end.
   */
  private async changeEmail(em: EntityManager, userId: string, newEmail: string): Promise<void> {
    const user = await this.users.findForUpdate(userId, em);
    if (!user) throw new ProblemError(400, 'The token is invalid, expired or already used');
    if (user.email.toLowerCase() === newEmail.toLowerCase()) return;
    // Taken meanwhile (by a registration)? Asked under the address's lock, so no unique violation follows.
    await this.users.lockAddress(newEmail, em);
    // The link's click proves the new address, not who holds the password: whoever set the account up may have
    // moved it to someone else's address, whose owner clicked. A password proven by a reset proved the old address
    // only, so it counts as not proven from here (the new address's first reset, or a single sign-on, takes back
    // what was set up before: API keys, provider links, settings; the account's own holder sets them up again).
    const [, moved] = await em.query(
      `UPDATE users SET email = $2, email_verified_at = coalesce(email_verified_at, now()), password_proven_at = NULL, updated_at = now()
        WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM users o WHERE lower(o.email) = lower($2) AND o.id <> $1)`,
      [userId, newEmail],
    );
    if (!moved) throw emailTaken();
    await this.tokens.invalidate(em, userId);
    await this.outbox.append(em, 'identity.user.email-changed', { userId, previousEmail: user.email, newEmail, firstName: user.firstName, locale: user.locale }, { subject: { userId } });
    // Its first confirmed address (a typo at registration, mended): welcomed there, as a confirmation would have.
    if (!user.emailVerifiedAt) {
      await this.outbox.append(em, 'identity.user.verified', { userId, email: newEmail, firstName: user.firstName, locale: user.locale, restrictToEu: user.restrictToEu }, { subject: { userId } });
    }
    await this.outbox.append(em, 'identity.user.updated', { userId, changed: ['email'] }, { subject: { userId } });
  }

  private dummy(): Promise<string> {
    return (this.dummyHash ??= this.passwords.hash(randomUUID()));
  }
}

