import { Inject, Injectable, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import { DataSource } from 'typeorm';
import type { Logger } from 'pino';
import { MESSAGING_RETENTION_RULES } from '@ally/messaging';
import { purgeExpired, type PurgeRule } from '@ally/persistence';
import { LOGGER } from './tokens.js';

export const RETENTION_RULES = Symbol('RETENTION_RULES');
const HOUR_MS = 3600_000;
const FIRST_PURGE_MS = 2 * 60_000;

/**
 * Deletes what a service keeps only for a fixed time (its RETENTION_RULES,
 * after its outbox's and inbox's), a few minutes after the start and then
 * every hour, in small batches. The privacy service's retention runs come on
 * top of this for what needs a report or a legal hold.
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
    const purge = () =>
      this.purgeExpired()
        .then((counts) => Object.values(counts).some((n) => n > 0) && this.logger.info({ counts }, 'retention purge'))
        .catch((err) => this.logger.warn({ err: String(err) }, 'retention purge failed'));
    // The first a few minutes after the start (replicas started together spread out), then hourly: replicas
    // replaced more often than hourly (busy release days) would otherwise never purge.
    this.timer = setTimeout(() => {
      void purge();
      this.timer = setInterval(purge, HOUR_MS);
      this.timer.unref();
    }, FIRST_PURGE_MS * (1 + Math.random()));
    this.timer.unref();
  }

  onModuleDestroy() {
    // clearTimeout clears an interval too.
    clearTimeout(this.timer);
  }

  purgeExpired(): Promise<Record<string, number>> {
    return purgeExpired(this.ds, [...MESSAGING_RETENTION_RULES, ...this.rules]);
  }
}
