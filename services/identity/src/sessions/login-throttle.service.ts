import { Inject, Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { ProblemError } from '@ally/contracts';
import { IDENTITY_CONFIG, type IdentityConfig } from '../config.js';
import { AddressHashes } from '../common/address-hash.js';
import { LoginAuditEntity } from './login-audit.entity.js';
import { isForeignKeyViolation, lockNamed } from '@ally/persistence';
import { clientNetwork } from '@ally/platform';

const networkOf = (ip: string | null | undefined) => (ip ? clientNetwork(ip) : null);

/**
 * Failed sign-ins are counted per account and per network (an IPv4 address,
 * an IPv6 address's /64) in the login audit (shared by all replicas); past the
 * limit, the next attempt waits.
 */
@Injectable()
export class LoginThrottleService {
  constructor(
    private readonly ds: DataSource,
    @Inject(IDENTITY_CONFIG) private readonly config: IdentityConfig,
    private readonly addresses: AddressHashes,
  ) {}

  /**
   * Takes a place for a sign-in attempt before its password is checked: the
   * attempt counts as failed from here (a row in the audit), so attempts sent
   * at once cannot all pass the limit while their passwords are being checked
   * (20 parallel guesses got 19 checks against a limit of 5). Counting and
   * taking the place happen under a lock per address and per IP. `finish`
   * records the outcome.
   */
  async begin(email: string, ip: string | undefined, method: string): Promise<string> {
    return this.ds.transaction(async (em) => {
      await lockNamed(em, `login-account:${this.addresses.of(email)}`);
      const network = networkOf(ip);
      if (network) await lockNamed(em, `login-ip:${network}`);
      await this.assertAllowed(email, ip, em);
      const [row] = await em.query(`INSERT INTO login_audit (email_hash, ip, network, succeeded, method) VALUES ($1, $2, $3, false, $4) RETURNING id`, [
        this.addresses.of(email),
        ip ?? null,
        network,
        method,
      ]);
      return String(row.id);
    });
  }

  /** The outcome of an attempt `begin` counted; a user who objected to the login audit is kept only as the address hash. */
  async finish(attemptId: string, attempt: { userId: string | null; ip?: string; succeeded: boolean }): Promise<void> {
    const { userId, ip, network } = await this.recordedAs(attempt.userId, attempt.ip);
    await this.ds
      .query(`UPDATE login_audit SET user_id = $2, ip = $3, network = $4, succeeded = $5 WHERE id = $1`, [attemptId, userId, ip, network, attempt.succeeded])
      .catch(accountGone);
  }

  private async assertAllowed(email: string, ip: string | undefined, em: EntityManager): Promise<void> {
    const windowS = this.config.LOGIN_THROTTLE_WINDOW_SECONDS;
    const [row] = await em.query(
      `SELECT
         count(*) FILTER (WHERE email_hash = $1) AS by_account,
         count(*) FILTER (WHERE network = $2) AS by_network
       FROM login_audit
       WHERE NOT succeeded AND occurred_at > now() - make_interval(secs => $3) AND (email_hash = $1 OR network = $2)`,
      [this.addresses.of(email), networkOf(ip), windowS],
    );
    const tooMany = () => new ProblemError(429, 'Too many failed sign-in attempts; try again later', { retryAfter: windowS });
    if (Number(row.by_network) >= this.config.LOGIN_MAX_FAILURES_PER_IP) throw tooMany();
    // Guesses from elsewhere lock the account only for places it was never used from: whoever knows
    // an address could otherwise keep its owner out (their own IP still has its per-IP limit).
    if (Number(row.by_account) >= this.config.LOGIN_MAX_FAILURES_PER_ACCOUNT && !(ip && (await this.usedFrom(email, ip, em)))) throw tooMany();
  }

  /** Whether the account with this address was used from this IP before (`usedFromIp`). */
  private async usedFrom(email: string, ip: string, em: EntityManager): Promise<boolean> {
    const [user]: { id: string }[] = await em.query(`SELECT id FROM users WHERE lower(email) = lower($1)`, [email]);
    return user !== undefined && (await this.usedFromIp(user.id, ip, em));
  }

  /** A user who objected to the login audit (upheld, or not yet decided) is recorded only as the address hash (for throttling). */
  async record(attempt: { email: string; userId: string | null; ip?: string; succeeded: boolean; method: string }): Promise<void> {
    await this.ds
      .getRepository(LoginAuditEntity)
      .insert({
        emailHash: this.addresses.of(attempt.email),
        ...(await this.recordedAs(attempt.userId, attempt.ip)),
        succeeded: attempt.succeeded,
        method: attempt.method,
      })
      .catch(accountGone);
  }

  /** Whom and where an attempt names in the audit: nobody and nowhere for a user who objected to it or restricted its processing (the address hash alone counts). */
  private async recordedAs(userId: string | null, ip: string | undefined): Promise<{ userId: string | null; ip: string | null; network: string | null }> {
    const paused = userId !== null && (await this.auditPaused(userId));
    return paused ? { userId: null, ip: null, network: null } : { userId, ip: ip ?? null, network: networkOf(ip) };
  }

  /**
   * Whether this user signed in or registered from this IP before (for the "new sign-in" mail).
   * A caller inside a transaction passes its `em`, so it asks on the connection it holds
   * instead of waiting for a second one from a pool its peers may have drained.
   */
  async isKnownIp(userId: string, ip: string | undefined, em: EntityManager = this.ds.manager): Promise<boolean> {
    // Without an audit for this user (they objected to it) there is nothing to compare with; no warning mail.
    // A restriction keeps the audit stored, and the warning is a security mail: it still goes.
    if (!ip || (await this.auditPaused(userId, em, 'objections only'))) return true;
    return this.usedFromIp(userId, ip, em);
  }

  /**
   * Whether the user signed in, or held a session, from this IP before. Sessions count too: the
   * registration opens the first one from its IP without a sign-in (nor an audit row). Sessions
   * opened while the audit was paused (a restriction) keep no IP: a place seen only then is not known.
   */
  private async usedFromIp(userId: string, ip: string, em: EntityManager): Promise<boolean> {
    const rows = await em.query(
      `SELECT 1 FROM login_audit WHERE user_id = $1 AND ip = $2 AND succeeded
       UNION ALL SELECT 1 FROM sessions WHERE user_id = $1 AND ip = $2 LIMIT 1`,
      [userId, ip],
    );
    return rows.length > 0;
  }

  /**
   * Whether the login audit is paused for the user: an objection (pending or
   * upheld) or, unless `objections only`, a restriction of the account not lifted.
   * Sessions opened meanwhile keep no IP or user agent either (SessionsService).
   */
  async auditPaused(userId: string, em: EntityManager = this.ds.manager, only?: 'objections only'): Promise<boolean> {
    const rows = await em.query(
      `SELECT 1 FROM users WHERE id = $1 AND (login_audit_objected OR EXISTS (SELECT 1 FROM objections WHERE user_id = $1 AND decided_at IS NULL)
         OR ($2 AND EXISTS (SELECT 1 FROM restrictions WHERE user_id = $1 AND lifted_at IS NULL)))`,
      [userId, only === undefined],
    );
    return rows.length > 0;
  }
}

/** The account was erased while it signed in (or proved its password): the audit row names no one, and the caller hears 401. */
function accountGone(err: unknown): never {
  if (isForeignKeyViolation(err)) throw new ProblemError(401, 'The account no longer exists');
  throw err;
}
