import { Inject, Injectable, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import { DataSource } from 'typeorm';
import type { Logger } from 'pino';
import { LOGGER } from '@ally/platform';

const HOUR_MS = 3600_000;
const BATCH = 1000;

/**
 * What identity deletes on its own, by age (ARCHITECTURE.md, retention
 * defaults): the login audit after 30 days, ended sessions 30 days after they
 * ended, used or expired one-time tokens, invitations and SSO states, and
 * published outbox rows after the stream's 7 days. Deleted in small batches
 * so no live table is locked for long.
 */
export const RETENTION_RULES = [
  { name: 'login-audit', table: 'login_audit', key: 'id', expired: `occurred_at < now() - interval '30 days'` },
  { name: 'sessions', table: 'sessions', key: 'id', expired: `coalesce(revoked_at, absolute_expires_at) < now() - interval '30 days'` },
  { name: 'one-time-tokens', table: 'one_time_tokens', key: 'token_hash', expired: `coalesce(used_at, expires_at) < now() - interval '1 day'` },
  { name: 'invitations', table: 'invitations', key: 'id', expired: `coalesce(accepted_at, expires_at) < now() - interval '30 days'` },
  { name: 'sso-states', table: 'sso_states', key: 'state', expired: `expires_at < now()` },
  { name: 'outbox', table: 'outbox', key: 'id', expired: `sent_at < now() - interval '7 days'` },
] as const;

@Injectable()
export class RetentionService implements OnApplicationBootstrap, OnModuleDestroy {
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly ds: DataSource,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  onApplicationBootstrap() {
    this.timer = setInterval(() => void this.purgeExpired().catch((err) => this.logger.warn({ err: String(err) }, 'retention purge failed')), HOUR_MS);
    this.timer.unref();
  }

  onModuleDestroy() {
    if (this.timer) clearInterval(this.timer);
  }

  /** Returns the number of rows deleted per rule. */
  async purgeExpired(): Promise<Record<string, number>> {
    const counts: Record<string, number> = {};
    for (const { name, table, key, expired } of RETENTION_RULES) {
      let total = 0;
      for (;;) {
        const [, affected] = await this.ds.query(
          `DELETE FROM ${table} WHERE ${key} IN (SELECT ${key} FROM ${table} WHERE ${expired} LIMIT ${BATCH} FOR UPDATE SKIP LOCKED)`,
        );
        total += Number(affected ?? 0);
        if (!affected || affected < BATCH) break;
      }
      counts[name] = total;
    }
    if (Object.values(counts).some((n) => n > 0)) this.logger.info({ counts }, 'retention purge');
    return counts;
  }
}
