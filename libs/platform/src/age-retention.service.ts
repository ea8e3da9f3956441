import { Inject, Injectable, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import { DataSource } from 'typeorm';
import type { Logger } from 'pino';
import { MESSAGING_RETENTION_RULES } from '@ally/messaging';
import { purgeExpired, type PurgeRule } from '@ally/persistence';
import { LOGGER } from './tokens.js';

export const RETENTION_RULES = Symbol('RETENTION_RULES');
const HOUR_MS = 3600_000;

/**
 * Deletes what a service keeps only for a fixed time (its RETENTION_RULES,
 * after its outbox's and inbox's), every hour, in small batches. The privacy
 * service's retention runs come on top of this for what needs a report or a
 * legal hold.
 */
@Injectable()
export class AgeRetentionService implements OnApplicationBootstrap, OnModuleDestroy {
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly ds: DataSource,
    @Inject(RETENTION_RULES) private readonly rules: PurgeRule[],
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  onApplicationBootstrap() {
    this.timer = setInterval(() => {
      this.purgeExpired()
        .then((counts) => Object.values(counts).some((n) => n > 0) && this.logger.info({ counts }, 'retention purge'))
        .catch((err) => this.logger.warn({ err: String(err) }, 'retention purge failed'));
    }, HOUR_MS);
    this.timer.unref();
  }

  onModuleDestroy() {
    if (this.timer) clearInterval(this.timer);
  }

  purgeExpired(): Promise<Record<string, number>> {
    return purgeExpired(this.ds, [...MESSAGING_RETENTION_RULES, ...this.rules]);
  }
}
