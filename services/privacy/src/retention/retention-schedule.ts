import { Inject, Injectable, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import { DataSource } from 'typeorm';
import type { Logger } from 'pino';
import { LOGGER } from '@ally/platform';
import { PRIVACY_CONFIG, type PrivacyConfig } from '../config.js';
import { RetentionRunsService } from './retention-runs.service.js';
import { lockNamed } from '@ally/persistence';

const CHECK_EVERY_MS = 3600_000;
/** The first look after start: the other services are up by then. */
const FIRST_CHECK_MS = 60_000;

/**
 * The schedule of retention runs where no CronJob keeps it (`npm start`, a
 * plain container): every hour a replica looks whether the last scheduled
 * run is `RETENTION_SCHEDULE_HOURS` old, and if so starts one of every
 * category, under a lock so two replicas never both start one. Each service
 * purges its declared categories only in these runs, which follow
 * compliance's periods and spare held users; the run and its results are
 * the proof.
 */
@Injectable()
export class RetentionSchedule implements OnApplicationBootstrap, OnModuleDestroy {
  private timers: NodeJS.Timeout[] = [];

  constructor(
    private readonly ds: DataSource,
    private readonly runs: RetentionRunsService,
    @Inject(PRIVACY_CONFIG) private readonly config: PrivacyConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  onApplicationBootstrap(): void {
    if (this.config.PRIVACY_WORKER === 'off' || this.config.RETENTION_SCHEDULE_HOURS === 0) return;
    const check = () => void this.runIfDue().catch((err) => this.logger.warn({ err: String(err) }, 'scheduled retention run failed'));
    this.timers = [setTimeout(check, FIRST_CHECK_MS), setInterval(check, CHECK_EVERY_MS)];
    for (const t of this.timers) t.unref();
  }

  onModuleDestroy(): void {
    for (const t of this.timers) clearTimeout(t);
  }

  /**
   * Starts and runs a scheduled run if no full, real one completed within the
   * period; its id, or undefined when none was due. A run that failed (a
   * service briefly down) or died with its process is tried again at the next
   * hourly look, not a period later; one still running, however long, is left
   * to finish.
   */
  async runIfDue(hours = this.config.RETENTION_SCHEDULE_HOURS): Promise<string | undefined> {
    const id = await this.ds.transaction(async (em) => {
      await lockNamed(em, 'privacy-retention-schedule');
      await this.runs.failAbandoned(em);
      // Only a full, real run counts: `retention-run --scheduled --dry-run` (or with --categories) deleted nothing else.
      const [recent] = await em.query(
        `SELECT 1 FROM retention_runs WHERE trigger = 'schedule' AND NOT dry_run AND categories IS NULL
           AND ((status = 'completed' AND created_at > now() - $1 * interval '1 hour') OR status = 'running' OR (status = 'queued' AND created_at > now() - interval '1 hour'))
         LIMIT 1`,
        [hours],
      );
      return recent ? undefined : this.runs.create('schedule', { dryRun: false }, undefined, em);
    });
    if (!id) return undefined;
    const run = await this.runs.execute(id);
    this.logger.info({ runId: id, status: run.status }, 'scheduled retention run');
    return id;
  }
}
