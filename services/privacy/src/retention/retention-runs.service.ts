import { Inject, Injectable, type BeforeApplicationShutdown } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { v7 as uuidv7 } from 'uuid';
import type { Logger } from 'pino';
import { allDataCategories, decodeCursor, keysetPage, privacyRetentionRpc, ProblemError, type Actor, type Page, type RetentionRunView } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { lockNamed, type HeldScope } from '@ally/persistence';
import { LOGGER } from '@ally/platform';
import { AuditTrail } from '../audit/audit-trail.service.js';
import { NotFound, RetentionRunInProgress, UnknownCategories } from '../common/privacy-errors.js';
import { PrivacyOutbox } from '../common/privacy-outbox.js';
import { PRIVACY_CONFIG, type PrivacyConfig } from '../config.js';
import { lockHeldSet } from '../legal-holds/held-set-lock.js';
import { LegalHoldsService } from '../legal-holds/legal-holds.service.js';
import { KubernetesJobLauncher } from './kubernetes-job.launcher.js';
import { OwnRetention } from './own-retention.js';
import { RetentionPoliciesService } from './retention-policies.service.js';

export type RunTrigger = RetentionRunView['trigger'];

interface RunRow {
  id: string;
  status: RetentionRunView['status'];
  dry_run: boolean;
  categories: string[] | null;
  trigger: RunTrigger;
  launched_as: RetentionRunView['launchedAs'];
  job_name: string | null;
  held_users: number;
  errors: { service: string; error: string }[];
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
}

const iso = (d: Date | null) => (d ? new Date(d).toISOString() : null);

/**
 * A run is alive while the process executing it holds the advisory lock
 * (RETENTION_RUN_LOCK, hashtext(run id)) on a connection of its own: a process that is
 * killed, or loses its node, lets go of it with its connection, so a run
 * marked running without a holder is one that will never finish.
 */
export const RETENTION_RUN_LOCK = 7_301_017;
/** How long before privacy stops waiting a service stops taking batches (a batch and the answer fit in it). */
const STOP_MARGIN_MS = 5_000;
/**
 * A service deletes for this long with one held set, then privacy reads it
 * again: the longest a new legal hold or restriction waits for a run under way.
 */
const SLICE_MS = 2_000;
const STOPPED = 'privacy was stopped during the run (a restart or a rollout)';
const JOB_NEVER_STARTED = [{ service: 'kubernetes', error: 'its Job did not start the run within an hour; nothing was deleted by it' }];
const HOLDER_GONE = [{ service: 'privacy', error: 'the process running it ended before it finished; what it deleted before is not counted' }];

/**
 * Retention runs: started by the schedule (the CronJob runs the
 * `retention-run` command), by compliance (API: a Kubernetes Job in a
 * cluster, this process elsewhere) or from the CLI. A run asks every service
 * holding personal data to purge its categories per the current policies,
 * skipping held users, and keeps what each reports.
 */
@Injectable()
export class RetentionRunsService implements BeforeApplicationShutdown {
  /** Runs this process is executing, and whether it is being stopped (they end at their next slice). */
  private readonly executing = new Set<Promise<unknown>>();
  private stopping = false;

  constructor(
    private readonly ds: DataSource,
    private readonly rpc: RpcClient,
    private readonly policies: RetentionPoliciesService,
    private readonly holds: LegalHoldsService,
    private readonly own: OwnRetention,
    private readonly k8s: KubernetesJobLauncher,
    private readonly audit: AuditTrail,
    private readonly outbox: PrivacyOutbox,
    @Inject(PRIVACY_CONFIG) private readonly config: PrivacyConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  get inCluster(): boolean {
    return this.config.RETENTION_RUNNER === 'kubernetes' || (this.config.RETENTION_RUNNER === 'auto' && !!this.config.KUBERNETES_SERVICE_HOST);
  }

  /**
   * The schedule's run: one already under way (a run compliance started, a dry run) is waited for, within
   * `waitMs` (well inside the Job's two hours, so the run itself still has time), instead of the night's run being given up (its Job retries at once, and the next comes a day later).
   */
  async createWhenFree(trigger: RunTrigger, input: { dryRun: boolean; categories?: string[] }, { waitMs = 40 * 60_000, everyMs = 30_000 } = {}): Promise<string> {
    const until = Date.now() + waitMs;
    for (;;) {
      try {
        return await this.create(trigger, input);
      } catch (err) {
        if (!(err instanceof RetentionRunInProgress) || Date.now() + everyMs > until) throw err;
        this.logger.info({ running: err.runId }, 'a retention run is under way; the scheduled one starts after it');
        await new Promise((resolve) => setTimeout(resolve, everyMs));
      }
    }
  }

  /** `em`: the caller's transaction, which the run's row and audit entry then commit with. */
  async create(trigger: RunTrigger, input: { dryRun: boolean; categories?: string[] }, actor?: Actor, em?: EntityManager): Promise<string> {
    const known = new Set(allDataCategories.map((c) => c.category));
    const unknown = (input.categories ?? []).map((name, index) => ({ name, index })).filter((c) => !known.has(c.name));
    if (unknown.length) throw new UnknownCategories(unknown);
    // A category named twice is run once.
    if (input.categories) input = { ...input, categories: [...new Set(input.categories)] };
    const id = uuidv7();
    const insert = async (em: EntityManager) => {
      // One run at a time, dry or real: two at once would split the rows between them, and neither's results would say what went.
      await lockNamed(em, 'privacy-retention-run');
      await this.failAbandoned(em);
      const [busy] = await em.query(`SELECT id FROM retention_runs WHERE status = 'running' OR (status = 'queued' AND created_at > now() - interval '1 hour') LIMIT 1`);
      if (busy) throw new RetentionRunInProgress(busy.id);
      await em.query(`INSERT INTO retention_runs (id, dry_run, categories, trigger, started_by) VALUES ($1, $2, $3, $4, $5)`, [
        id,
        input.dryRun,
        input.categories ? JSON.stringify(input.categories) : null,
        trigger,
        actor?.userId ?? null,
      ]);
      await this.audit.append(em, { actor: actor ? `staff:${actor.userId}` : 'system', action: 'retention-run.requested', details: { runId: id, trigger, dryRun: input.dryRun, categories: input.categories ?? 'all' } });
    };
    await (em ? insert(em) : this.ds.transaction(insert));
    return id;
  }

  /** The compliance API: a Job in Kubernetes, otherwise in this process (answering at once either way). */
  async start(actor: Actor, input: { dryRun: boolean; categories?: string[] }): Promise<RetentionRunView> {
    const id = await this.create('compliance', input, actor);
    if (this.inCluster) {
      try {
        const jobName = await this.k8s.launch(id);
        await this.ds.query(`UPDATE retention_runs SET launched_as = 'kubernetes-job', job_name = $2 WHERE id = $1`, [id, jobName]);
      } catch (err) {
        const error = `could not create the retention Job: ${String((err as Error).message).split('\n').slice(0, 2).join(' ')}`.slice(0, 500);
        await this.ds.transaction(async (em) => {
          await em.query(`UPDATE retention_runs SET status = 'failed', launched_as = 'kubernetes-job', finished_at = now(), errors = $2 WHERE id = $1`, [id, JSON.stringify([{ service: 'kubernetes', error }])]);
          await this.audit.append(em, { actor: 'system', action: 'retention-run.finished', details: { runId: id, dryRun: input.dryRun, status: 'failed', affected: 0, failedServices: ['kubernetes'] } });
        });
        this.logger.error({ runId: id, err: error }, 'retention Job not created');
        throw new ProblemError(503, error);
      }
    } else {
      setImmediate(() => this.execute(id).catch((err) => this.logger.error({ runId: id, err: String(err) }, 'retention run failed')));
    }
    return this.get(id);
  }

  /**
   * A stopping process (a rollout, a scale-down) ends its runs at their next slice, within the
   * grace: counted, and marked failed saying so, instead of left running with nothing counted.
   */
  async beforeApplicationShutdown(): Promise<void> {
    this.stopping = true;
    await Promise.allSettled([...this.executing]);
  }

  /** Runs a queued run to its end; a run someone else already took is left alone. */
  async execute(id: string): Promise<RetentionRunView> {
    const running = this.executeLocked(id);
    this.executing.add(running);
    try {
      return await running;
    } finally {
      this.executing.delete(running);
    }
  }

  private async executeLocked(id: string): Promise<RetentionRunView> {
    const lock = this.ds.createQueryRunner();
    await lock.connect();
    try {
      // Taken before the claim, so a run is never `running` without its holder.
      const [{ held }] = await lock.query(`SELECT pg_try_advisory_lock($1, hashtext($2)) AS held`, [RETENTION_RUN_LOCK, id]);
      if (!held) return await this.get(id);
      try {
        return await this.executeHolding(id);
      } finally {
        await lock.query(`SELECT pg_advisory_unlock($1, hashtext($2))`, [RETENTION_RUN_LOCK, id]).catch(() => undefined);
      }
    } finally {
      await lock.release();
    }
  }

  /**
   * Marks failed the runs (or the one run `id`) still `running` whose process
   * is gone, with an audit entry each: then the schedule starts the next one,
   * and compliance reads what happened instead of a run forever in progress.
   */
  async failAbandoned(em: EntityManager = this.ds.manager, id?: string): Promise<string[]> {
    // An UPDATE answers [rows, count] through TypeORM.
    const [gone]: [{ id: string; dry_run: boolean }[], number] = await em.query(
      `UPDATE retention_runs r SET status = 'failed', finished_at = now(), errors = CASE WHEN r.status = 'running' OR r.launched_as = 'in-process' THEN $3::jsonb ELSE $4::jsonb END
        WHERE (r.status = 'running' OR (r.status = 'queued' AND r.launched_as = 'in-process' AND r.created_at < now() - interval '5 minutes')
               -- A Job that never started within the hour a queued run holds off the next: it would run beside a later one.
               OR (r.status = 'queued' AND r.launched_as = 'kubernetes-job' AND r.created_at < now() - interval '1 hour'))
          AND ($2::uuid IS NULL OR r.id = $2::uuid)
          AND NOT EXISTS (SELECT 1 FROM pg_locks l
            WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
              AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND l.classid = $1::int::oid AND l.objid = hashtext(r.id::text)::oid)
        RETURNING r.id, r.dry_run`,
      [RETENTION_RUN_LOCK, id ?? null, JSON.stringify(HOLDER_GONE), JSON.stringify(JOB_NEVER_STARTED)],
    );
    for (const run of gone) {
      this.logger.warn({ runId: run.id }, 'retention run abandoned: its process ended, or its Job never started, before it finished; marked failed');
      await this.audit.append(em, { actor: 'system', action: 'retention-run.abandoned', details: { runId: run.id, dryRun: run.dry_run } });
    }
    return gone.map((r) => r.id);
  }

  private async executeHolding(id: string): Promise<RetentionRunView> {
    const [claimed] = await this.ds.query(`UPDATE retention_runs SET status = 'running', started_at = now() WHERE id = $1 AND status = 'queued' RETURNING *`, [id]);
    const run: RunRow | undefined = claimed[0];
    if (!run) return this.get(id);
    const wanted = run.categories ? new Set(run.categories) : null;
    const plan = (await this.policies.list()).filter((p) => !wanted || wanted.has(p.category));
    const errors: { service: string; error: string }[] = [];
    const results: { service: string; category: string; affected: number }[] = [];
    let heldUsers = 0;
    /** One slice of a service's part, with the held set as it is now (see lockHeldSet). */
    const slice = <T>(work: (held: { userIds: string[]; scopes: HeldScope[] }) => Promise<T>): Promise<T> =>
      this.ds.transaction(async (em) => {
        await lockHeldSet(em, 'shared');
        const held = await this.holds.held(em);
        heldUsers = Math.max(heldUsers, held.userIds.length);
        return work(held);
      });
    const deadline = Date.now() + Math.max(this.config.RETENTION_RPC_TIMEOUT_MS - STOP_MARGIN_MS, this.config.RETENTION_RPC_TIMEOUT_MS / 2);
    const services = [...new Set(plan.map((p) => p.service))];
    await Promise.all(
      services.map(async (service) => {
        const categories = plan.filter((p) => p.service === service).map((p) => ({ category: p.category, retentionDays: p.retentionDays }));
        /** What the service's slices deleted so far: counted also when a later slice fails. */
        const affected = new Map(categories.map((c) => [c.category, 0]));
        try {
          if (service === 'privacy') {
            for (const [i, c] of categories.entries()) {
              if (this.stopping) {
                errors.push({ service, error: `${STOPPED} with ${categories.slice(i).map((r) => r.category).join(', ')} still to do (the next run does them)` });
                return;
              }
              // Slice by slice, each with the held set as it is then (a backlog must not keep a new hold waiting);
              // what went is counted also when a later slice fails.
              let deleted = 0;
              try {
                for (;;) {
                  const stopBy = Math.min(Date.now() + SLICE_MS, deadline);
                  const part = await slice((held) => this.own.purge(c.category, c.retentionDays, held.userIds, run.dry_run, categories, stopBy));
                  deleted += part.affected;
                  if (part.complete) break;
                  if (this.stopping || Date.now() >= deadline) {
                    results.push({ service, category: c.category, affected: deleted });
                    const why = this.stopping ? STOPPED : 'stopped at its time limit';
                    errors.push({ service, error: `${why} with more to delete in ${categories.slice(i).map((r) => r.category).join(', ')} (what went is counted; the next run goes on)` });
                    return;
                  }
                }
              } catch (err) {
                if (deleted) results.push({ service, category: c.category, affected: deleted });
                throw err;
              }
              results.push({ service, category: c.category, affected: deleted });
            }
            return;
          }
          let pending = categories;
          while (pending.length) {
            if (this.stopping) {
              errors.push({ service, error: `${STOPPED} with more to delete in ${pending.map((c) => c.category).join(', ')} (what went is counted; the next run goes on)` });
              break;
            }
            // The service stops taking batches at the end of the slice (or of the run), and says what went: nothing deleted goes uncounted.
            const stopBy = Math.min(Date.now() + SLICE_MS, deadline);
            const report = await slice((held) =>
              this.rpc.call(
                privacyRetentionRpc(service),
                { runId: id, categories: pending, dryRun: run.dry_run, heldUserIds: held.userIds, heldScopes: held.scopes, stopBy: new Date(stopBy).toISOString(), stopWithinMs: Math.max(0, stopBy - Date.now()) },
                { timeoutMs: stopBy - Date.now() + STOP_MARGIN_MS },
              ),
            );
            for (const r of report.results ?? []) affected.set(r.category, (affected.get(r.category) ?? 0) + (Number(r.affected) || 0));
            const unfinished = new Set((report.results ?? []).filter((r) => r.complete === false).map((r) => r.category));
            pending = pending.filter((c) => unfinished.has(c.category));
            if (pending.length && Date.now() >= deadline) {
              errors.push({ service, error: `stopped at its time limit with more to delete in ${[...unfinished].join(', ')} (what went is counted; the next run goes on)` });
              break;
            }
          }
        } catch (err) {
          errors.push({ service, error: ((err as Error).message ?? String(err)).slice(0, 300) });
          // A service that failed before deleting anything has no counts to show: zeros would read as "nothing was due".
          if ([...affected.values()].every((n) => n === 0)) return;
        }
        if (service !== 'privacy') for (const [category, n] of affected) results.push({ service, category, affected: n });
      }),
    );
    await this.ds.query(`UPDATE retention_runs SET held_users = $2 WHERE id = $1`, [id, heldUsers]);
    const status = errors.length ? 'failed' : 'completed';
    const affected = results.reduce((n, r) => n + r.affected, 0);
    await this.ds.transaction(async (em) => {
      for (const r of results) {
        await em.query(`INSERT INTO retention_results (run_id, service, category, affected) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, [id, r.service, r.category, r.affected]);
      }
      await em.query(`UPDATE retention_runs SET status = $2, finished_at = now(), errors = $3 WHERE id = $1`, [id, status, JSON.stringify(errors)]);
      await this.outbox.append(em, 'privacy.retention-run.finished', { runId: id, dryRun: run.dry_run, status, affected });
      await this.audit.append(em, { actor: 'system', action: 'retention-run.finished', details: { runId: id, dryRun: run.dry_run, status, affected, heldUsers, failedServices: errors.map((e) => e.service) } });
    });
    return this.get(id);
  }

  async get(id: string): Promise<RetentionRunView> {
    const read = async (): Promise<RunRow | undefined> => (await this.ds.query(`SELECT * FROM retention_runs WHERE id = $1`, [id]))[0];
    let run = await read();
    if (!run) throw new NotFound('retention run');
    // Only a run that says it is running can have lost its process.
    if ((run.status === 'running' || run.status === 'queued') && (await this.ds.transaction((em) => this.failAbandoned(em, id))).length) run = (await read())!;
    return (await this.views([run]))[0];
  }

  /** Runs newest first, as compliance finds the daily schedule's and its own: what each deleted, or would have. */
  async list(filter: { status?: RetentionRunView['status']; dryRun?: boolean }, limit: number, cursor?: string): Promise<Page<RetentionRunView>> {
    // A run that lost its process reads as failed here too, not as running for ever.
    await this.ds.transaction((em) => this.failAbandoned(em));
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.status) where.push(`status = $${params.push(filter.status)}`);
    if (filter.dryRun !== undefined) where.push(`dry_run = $${params.push(filter.dryRun)}`);
    const after = decodeCursor(cursor);
    // Cut to milliseconds, as the cursor holds them: runs of one millisecond are not skipped.
    if (after) where.push(`(date_trunc('milliseconds', created_at), id) < ($${params.push(after.at)}::timestamptz, $${params.push(after.id)}::uuid)`);
    const rows: RunRow[] = await this.ds.query(
      `SELECT * FROM retention_runs ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY date_trunc('milliseconds', created_at) DESC, id DESC LIMIT ${limit + 1}`,
      params,
    );
    const { page, nextCursor } = keysetPage(rows, limit, (r) => [new Date(r.created_at), r.id]);
    return { data: await this.views(page), nextCursor };
  }

  private async views(runs: RunRow[]): Promise<RetentionRunView[]> {
    const results: ({ run_id: string } & RetentionRunView['results'][number])[] = runs.length
      ? await this.ds.query(`SELECT run_id, service, category, affected::int AS affected FROM retention_results WHERE run_id = ANY($1::uuid[]) ORDER BY service, category`, [runs.map((r) => r.id)])
      : [];
    return runs.map((run) => ({
      id: run.id,
      status: run.status,
      dryRun: run.dry_run,
      trigger: run.trigger,
      launchedAs: run.launched_as,
      jobName: run.job_name,
      categories: run.categories,
      heldUsers: run.held_users,
      createdAt: iso(run.created_at)!,
      startedAt: iso(run.started_at),
      finishedAt: iso(run.finished_at),
      results: results.filter((r) => r.run_id === run.id).map(({ service, category, affected }) => ({ service, category, affected })),
      errors: run.errors ?? [],
    }));
  }
}
