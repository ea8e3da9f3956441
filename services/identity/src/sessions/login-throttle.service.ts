import { Inject, Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { ProblemError } from '@ally/contracts';
import { IDENTITY_CONFIG, type IdentityConfig } from '../config.js';
import { hashSecret } from '../common/secrets.js';
import { LoginAuditEntity } from './login-audit.entity.js';

/**
 * Failed sign-ins are counted per account and per IP in the login audit
 * (shared by all replicas); past the limit, the next attempt waits.
 */
@Injectable()
export class LoginThrottleService {
  constructor(
    private readonly ds: DataSource,
    @Inject(IDENTITY_CONFIG) private readonly config: IdentityConfig,
  ) {}

  async assertAllowed(email: string, ip: string | undefined): Promise<void> {
    const windowS = this.config.LOGIN_THROTTLE_WINDOW_SECONDS;
    const [row] = await this.ds.query(
      `SELECT
         count(*) FILTER (WHERE email_hash = $1) AS by_account,
         count(*) FILTER (WHERE ip = $2) AS by_ip
       FROM login_audit
       WHERE NOT succeeded AND occurred_at > now() - make_interval(secs => $3) AND (email_hash = $1 OR ip = $2)`,
      [hashSecret(email), ip ?? null, windowS],
    );
    if (Number(row.by_account) >= this.config.LOGIN_MAX_FAILURES_PER_ACCOUNT || Number(row.by_ip) >= this.config.LOGIN_MAX_FAILURES_PER_IP) {
      throw new ProblemError(429, 'Too many failed sign-in attempts; try again later', { retryAfter: windowS });
    }
  }

  /** A user who objected to the login audit (upheld, or not yet decided) is recorded only as the address hash (for throttling). */
  async record(attempt: { email: string; userId: string | null; ip?: string; succeeded: boolean; method: string }): Promise<void> {
    const objected = attempt.userId !== null && (await this.objected(attempt.userId));
    await this.ds.getRepository(LoginAuditEntity).insert({
      emailHash: hashSecret(attempt.email),
      userId: objected ? null : attempt.userId,
      ip: objected ? null : (attempt.ip ?? null),
      succeeded: attempt.succeeded,
      method: attempt.method,
    });
  }

  /**
   * Whether this user signed in or registered from this IP before (for the "new sign-in" mail).
   * A caller inside a transaction passes its `em`, so it asks on the connection it holds
   * instead of waiting for a second one from a pool its peers may have drained.
   */
  async isKnownIp(userId: string, ip: string | undefined, em: EntityManager = this.ds.manager): Promise<boolean> {
    // Without an audit for this user there is nothing to compare with; no warning mail.
    if (!ip || (await this.objected(userId, em))) return true;
    // Sessions count too: the registration opens the first one from its IP without a sign-in (nor an audit row).
    const rows = await em.query(
      `SELECT 1 FROM login_audit WHERE user_id = $1 AND ip = $2 AND succeeded
       UNION ALL SELECT 1 FROM sessions WHERE user_id = $1 AND ip = $2 LIMIT 1`,
      [userId, ip],
    );
    return rows.length > 0;
  }

  private async objected(userId: string, em: EntityManager = this.ds.manager): Promise<boolean> {
    const rows = await em.query(
      `SELECT 1 FROM users WHERE id = $1 AND (login_audit_objected OR EXISTS (SELECT 1 FROM objections WHERE user_id = $1 AND decided_at IS NULL))`,
      [userId],
    );
    return rows.length > 0;
  }
}
