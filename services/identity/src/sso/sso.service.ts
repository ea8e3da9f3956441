import { Inject, Injectable } from '@nestjs/common';
import { DataSource, LessThan, type EntityManager } from 'typeorm';
import { randomUUID } from 'node:crypto';
import * as oidc from 'openid-client';
import type { Logger } from 'pino';
import { emailSchema, personNameSchema, ProblemError, type RequestMeta, type SsoStart, type TokenPair } from '@ally/contracts';
import { isForeignKeyViolation, isUniqueViolation } from '@ally/persistence';
import { LOGGER, sameSecret } from '@ally/platform';
import { IDENTITY_CONFIG, type IdentityConfig, type SsoProviderConfig } from '../config.js';
import { ApiKeysService } from '../api-keys/api-keys.service.js';
import { IdentityOutbox } from '../common/identity-outbox.js';
import { restoreOwnerDefaults } from '../users/owner-defaults.js';
import { AddressHashes } from '../common/address-hash.js';
import { announceResidency } from '../users/residency-event.js';
import { SessionsService } from '../sessions/sessions.service.js';
import { LoginThrottleService } from '../sessions/login-throttle.service.js';
import { setUpWithoutProof, UserEntity } from '../users/user.entity.js';
import { OneTimeTokensService } from '../auth/one-time-tokens.service.js';
import { UsersRepository } from '../users/users.repository.js';
import { SsoIdentityEntity } from './sso-identity.entity.js';
import { SsoStateEntity } from './sso-state.entity.js';

const STATE_TTL_MS = 10 * 60 * 1000;

/**
 * OIDC single sign-on: authorization code with PKCE (S256), state and nonce
 * kept in the database between start and callback. An identity is linked to
 * an account by the provider's subject; a first sign-in with a verified email
 * links to the account with that address or creates one.
 */
@Injectable()
export class SsoService {
  private readonly configs = new Map<string, Promise<oidc.Configuration>>();

  constructor(
    private readonly ds: DataSource,
    private readonly users: UsersRepository,
    private readonly sessions: SessionsService,
    private readonly throttle: LoginThrottleService,
    private readonly apiKeys: ApiKeysService,
    private readonly outbox: IdentityOutbox,
    private readonly tokens: OneTimeTokensService,
    private readonly addresses: AddressHashes,
    @Inject(IDENTITY_CONFIG) private readonly config: IdentityConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async start(providerId: string): Promise<SsoStart> {
    const provider = this.provider(providerId);
    const configuration = await this.discover(provider);
    const codeVerifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const nonce = oidc.randomNonce();
    const repo = this.ds.getRepository(SsoStateEntity);
    await repo.delete({ expiresAt: LessThan(new Date()) });
    await repo.insert({ state, provider: provider.id, codeVerifier, nonce, expiresAt: new Date(Date.now() + STATE_TTL_MS) });
    const url = oidc.buildAuthorizationUrl(configuration, {
      redirect_uri: provider.redirectUri,
      scope: provider.scope,
      code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    });
    return { authorizationUrl: url.href };
  }

  /**
   * `browserState`: the state the browser that started the attempt brought back (the gateway's cookie). A
   * callback URL presented anywhere else (leaked, or an attacker's own attempt slipped to a victim: login CSRF)
   * is refused before the attempt is spent, so its own browser can still finish it.
   */
  async callback(providerId: string, callbackUrl: string, meta?: RequestMeta, browserState?: string): Promise<TokenPair> {
    const provider = this.provider(providerId);
    const url = new URL(callbackUrl);
    const error = url.searchParams.get('error');
    if (error) throw new ProblemError(401, `The identity provider refused the sign-in: ${error}`);
    const stateValue = url.searchParams.get('state') ?? '';
    if (browserState !== undefined && !sameSecret(stateValue, browserState)) {
      throw new ProblemError(400, 'Single sign-on must finish in the browser that started it (it was started elsewhere, or over 10 minutes ago); start again');
    }
    // Only a state as we issue them (base64url) is looked up: a NUL, say, is refused by Postgres (was a 500).
    const state = !/^[A-Za-z0-9_-]{1,128}$/.test(stateValue) ? null : await this.ds.transaction(async (em) => {
      const row = await em.getRepository(SsoStateEntity).findOneBy({ state: stateValue, provider: provider.id });
      if (!row) return null;
      // Used once: of callbacks replayed at the same moment, only the one that deleted it goes on (all of them
      // redeeming the code made the provider revoke the grant, and the genuine sign-in failed too).
      const { affected } = await em.getRepository(SsoStateEntity).delete({ state: row.state });
      return affected ? row : null;
    });
    if (!state || state.expiresAt.getTime() < Date.now()) throw new ProblemError(400, 'The sign-in attempt is unknown or expired; start again');

    let claims: oidc.IDToken;
    try {
      const configuration = await this.discover(provider);
      // The token request must name the redirect URI of the authorization request,
      // which is the configured one, not whatever origin the callback reached us on.
      const redirected = new URL(provider.redirectUri);
      redirected.search = url.search;
      const tokens = await oidc.authorizationCodeGrant(configuration, redirected, {
        pkceCodeVerifier: state.codeVerifier,
        expectedState: state.state,
        expectedNonce: state.nonce,
        idTokenExpected: true,
      });
      claims = tokens.claims()!;
      // When an access token is issued too, OIDC Core (5.4) has providers answer the
      // email and profile claims from UserInfo rather than in the ID token.
      const wanted = ['email', 'email_verified', 'given_name', 'family_name'];
      if (wanted.some((c) => claims[c] === undefined) && configuration.serverMetadata().userinfo_endpoint) {
        const userInfo = await oidc.fetchUserInfo(configuration, tokens.access_token, claims.sub);
        claims = { ...userInfo, ...claims };
      }
    } catch (err) {
      if (err instanceof ProblemError) throw err;
      // Not reached, or failing itself: no refused sign-in but a provider away, to try again (the attempt is spent).
      if (providerAway(err)) {
        this.logger.warn({ provider: provider.id, err: String((err as Error)?.cause ?? err) }, 'the identity provider could not be reached for a sign-in');
        throw new ProblemError(503, `The identity provider ${provider.id} cannot be reached; sign in again shortly`, { retryAfter: 5 });
      }
      throw new ProblemError(401, `Single sign-on failed: ${(err as Error).message}`);
    }

    // The address as registration takes it (trimmed, lower case, a real address), or none.
    const parsedEmail = emailSchema.safeParse(claims.email);
    const email = parsedEmail.success ? parsedEmail.data : undefined;
    const signIn = () => this.ds.transaction(async (em) => {
      const link = await em.getRepository(SsoIdentityEntity).findOneBy({ provider: provider.id, subject: claims.sub });
      let user = link ? await this.users.findById(link.userId, em) : null;
      let registered = false;
      if (!user) {
        if (!email || claims.email_verified !== true) throw new ProblemError(401, 'The identity provider did not confirm an email address');
        // Under the address's lock, as registration and an address change take it: the account read is the one
        // that has the address when the link is made (not one moving away), and no insert meets the unique index.
        await this.users.lockAddress(email, em);
        user = await this.users.findByEmail(email, em);
        if (!user) {
          user = await this.createUser(em, email, claims);
          registered = true;
        } else if (setUpWithoutProof(user)) user = await this.claimForOwner(em, user);
        await em.getRepository(SsoIdentityEntity).insert({ provider: provider.id, subject: claims.sub, userId: user.id });
      }
      // An account registered by this very sign-in has no other device to warn about.
      const knownIp = registered || (await this.throttle.isKnownIp(user.id, meta?.ip, em));
      return { user, pair: await this.sessions.signIn(em, user, 'sso', knownIp, meta) };
    });
    const { user, pair } = await signIn()
      // Two first sign-ins of one person at once: the second finds the account the first made.
      .catch((err) => (isUniqueViolation(err) ? signIn() : Promise.reject(err)))
      .catch((err) => {
        // The account was erased while it signed in: no account, as for a password sign-in (was a 500).
        throw isForeignKeyViolation(err) ? new ProblemError(401, 'The account no longer exists') : err;
      });
    // The audit writes outside this transaction, so only once an account created here is committed.
    await this.throttle.record({ email: user.email, userId: user.id, ip: meta?.ip, succeeded: true, method: `sso:${provider.id}` });
    return pair;
  }

  private async createUser(em: import('typeorm').EntityManager, email: string, claims: oidc.IDToken): Promise<UserEntity> {
    // The same names registration takes: the provider's values reach mails and every member list.
    const first = personNameSchema.safeParse(claims.given_name);
    const last = personNameSchema.safeParse(claims.family_name);
    if (!first.success || !last.success) {
      throw new ProblemError(422, 'The identity provider did not share a first and last name Ally can use (letters, at most 100 characters), which an Ally account requires');
    }
    const [firstName, lastName] = [first.data, last.data];
    const user = em.getRepository(UserEntity).create({
      id: randomUUID(),
      email,
      firstName,
      lastName,
      locale: String(claims.locale ?? '').startsWith('en') ? 'en' : 'de',
      emailVerifiedAt: new Date(),
      passwordHash: null,
      platformRoles: [],
      restrictToEu: true,
    });
    await this.users.lockAddress(email, em);
    await em.getRepository(UserEntity).insert(user);
    await this.outbox.append(em, 'identity.user.verified', { userId: user.id, email, firstName, locale: user.locale, restrictToEu: user.restrictToEu }, { subject: { userId: user.id } });
    await announceResidency(em, this.outbox, user.id, user.restrictToEu);
    return user;
  }

  /**
   * An account with this address may have been registered by someone else before its owner arrived
   * (pre-account hijacking): nobody verified it, or its password is still the registrant's (the owner
   * may have clicked the confirmation link that registration sent them). The provider has now proved
   * who owns the address: what the registrant set up without that proof (password, sessions, API keys,
   * settings) ends, and the address counts as verified. The owner can set a password again by a reset.
   */
  private async claimForOwner(em: EntityManager, user: UserEntity): Promise<UserEntity> {
    const emailVerifiedAt = user.emailVerifiedAt ?? new Date();
    await em.getRepository(UserEntity).update({ id: user.id }, { emailVerifiedAt, passwordHash: null });
    await this.sessions.revokeAllForUser(em, user.id, 'address proven by single sign-on');
    await this.apiKeys.revokeAllForUser(em, user.id);
    // And every link still waiting: one could move the account to the squatter's address.
    await this.tokens.invalidate(em, user.id);
    await restoreOwnerDefaults(em, this.outbox, this.addresses, user);
    // Welcomed once: an address confirmed by its link before (a squatter's password in place) was welcomed then.
    if (!user.emailVerifiedAt) {
      await this.outbox.append(
        em,
        'identity.user.verified',
        { userId: user.id, email: user.email, firstName: user.firstName, locale: user.locale, restrictToEu: user.restrictToEu },
        { subject: { userId: user.id } },
      );
    }
    return Object.assign(user, { emailVerifiedAt, passwordHash: null });
  }

  private provider(id: string): SsoProviderConfig {
    const provider = this.config.SSO_PROVIDERS.find((p) => p.id === id);
    if (!provider) throw new ProblemError(404, `Unknown single sign-on provider "${id}"`);
    return provider;
  }

  private discover(provider: SsoProviderConfig): Promise<oidc.Configuration> {
    let found = this.configs.get(provider.id);
    if (!found) {
      found = oidc
        .discovery(new URL(provider.issuer), provider.clientId, provider.clientSecret, undefined, {
          execute: provider.allowInsecure ? [oidc.allowInsecureRequests] : [],
        })
        .catch((err) => {
          this.configs.delete(provider.id);
          // What failed on our network is for our log, not for whoever asked.
          this.logger.warn({ provider: provider.id, err: String((err as Error)?.cause ?? err) }, 'the identity provider could not be reached for its configuration');
          throw new ProblemError(503, `The identity provider ${provider.id} cannot be reached; try again shortly`, { retryAfter: 5 });
        });
      this.configs.set(provider.id, found);
    }
    return found;
  }
}

/**
 * A network failure reaching the provider (fetch failed: refused, reset, no such host, timed out) or its own server
 * error, anywhere in the cause chain (openid-client wraps what it did not expect as its own ClientError).
 */
function providerAway(err: unknown): boolean {
  let e = err as { status?: unknown; name?: unknown; message?: unknown; code?: unknown; cause?: unknown } | undefined;
  for (let depth = 0; e && depth < 4; depth++, e = e.cause as typeof e) {
    if (typeof e.status === 'number' && e.status >= 500) return true;
    if (e.name === 'TypeError' && e.message === 'fetch failed') return true;
    if (typeof e.code === 'string' && /^(ECONN|ETIMEDOUT|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|UND_ERR)/.test(e.code)) return true;
  }
  return false;
}
