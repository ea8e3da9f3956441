import { Inject, Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import type { Logger } from 'pino';
import { Counter, Registry } from 'prom-client';
import { ProblemError } from '@ally/contracts';
import { PacedWorker } from '@ally/messaging';
import { LOGGER } from '@ally/platform';
import { AuditTrail } from '../audit/audit-trail.service.js';
import { PackageCipher } from '../common/package-cipher.js';
import { PrivacyOutbox } from '../common/privacy-outbox.js';
import { PRIVACY_CONFIG, type PrivacyConfig } from '../config.js';
import { tryLockHeldSetShared } from '../legal-holds/held-set-lock.js';
import { DecisionsService } from '../requests/decisions.service.js';
import type { RequestRow } from '../requests/requests.repository.js';
import { RequestFinalizer } from './request-finalizer.js';
import { ErasureContinues, HopelessStep, NotHandledYet, StepRunner, type ClaimedStep, type ErasureProgress, type StepOutcome } from './step-runner.js';

/** Steps one replica runs at once. */
const BATCH = 10;
const HOUSEKEEPING_MS = 60_000;

const countsOf = (outcome: StepOutcome): Record<string, number> => (outcome.kind === 'exported' ? outcome.counts : outcome.kind === 'erased' ? outcome.affected : {});

/** 4xx answers mean the request itself is wrong: retrying would not help. Timeouts, 5xx and "no responders" are retried. */
function retryable(err: unknown): boolean {
  if (err instanceof ProblemError) return err.status >= 500 || err.status === 408 || err.status === 429;
  return !failsAlikeEveryTime(err);
}

/** A part or package too large to hold as one string, or a step that cannot succeed: trying again cannot help. */
const failsAlikeEveryTime = (err: unknown): boolean => err instanceof RangeError || err instanceof HopelessStep;

/**
 * An export step whose lease ran out this often in a row while it ran is given up: its worker died each time (one
 * killed for the memory the export took would take the next down too). Erasures hold one slice at a time, and go on.
 */
const MAX_LAPSES = 3;

/**
 * Drives every saga from the database, so a restart of privacy (or of any
 * service) loses nothing: it claims due steps with FOR UPDATE SKIP LOCKED
 * (replicas share the work), leases them (a step of a worker that died is
 * taken again after PRIVACY_STEP_LEASE_MS), calls the service, and retries
 * failures with exponential backoff until the service confirms. Steps of a
 * later phase wait for the earlier ones; an erasure waits while a legal hold
 * stands. It also finishes requests whose steps are all done (an objection
 * once decided), lets lifts take effect once the subject was told, and warns
 * compliance before a due date passes.
 */
@Injectable()
export class SagaWorker extends PacedWorker {
  private lastHousekeeping = 0;
  private readonly steps: Counter;
  /** Steps under way: each holds a slot until it ends, while passes go on finishing requests, lifting, warning. */
  private readonly running = new Set<Promise<void>>();

  constructor(
    private readonly ds: DataSource,
    private readonly runner: StepRunner,
    private readonly finalizer: RequestFinalizer,
    private readonly decisions: DecisionsService,
    private readonly cipher: PackageCipher,
    private readonly audit: AuditTrail,
    private readonly outbox: PrivacyOutbox,
    @Inject(PRIVACY_CONFIG) private readonly config: PrivacyConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    registry: Registry,
  ) {
    super(config.PRIVACY_POLL_MS, (err) => logger.warn({ err: String(err) }, 'saga pass failed'));
    this.steps = new Counter({ name: 'ally_privacy_saga_steps_total', help: 'Saga step attempts by service, action and outcome', labelNames: ['service', 'action', 'outcome'], registers: [registry] });
  }

  /** PRIVACY_WORKER=off (the retention Job's process) leaves the sagas to the privacy replicas. */
  protected override get runsPasses(): boolean {
    return this.config.PRIVACY_WORKER !== 'off';
  }

  /**
   * One pass over everything due. Steps run beside the passes, as many as there are free slots: one long step (an
   * erasure in slices, an export of many pages) held up every other request's steps, their finishing, lifts,
   * warnings and expiry, for as long as it ran, when a pass waited for its whole batch.
   */
  protected async pass(): Promise<void> {
    while (this.running.size < BATCH && !this.shuttingDown) {
      const claimed = await this.claim(BATCH - this.running.size);
      if (claimed.length === 0) break;
      // Stopping began while claiming: the steps go back at once instead of waiting out their lease on another replica.
      if (this.shuttingDown) {
        await this.release(claimed);
        break;
      }
      for (const step of claimed) {
        const run: Promise<void> = this.execute(step)
          .catch((err) => this.logger.warn({ err: String(err), requestId: step.requestId, service: step.service }, 'saga step failed unexpectedly'))
          .finally(() => {
            this.running.delete(run);
            // Its request may be ready to finish, or a slot is free for the next step.
            this.wake();
          });
        this.running.add(run);
      }
    }
    await this.finalizeReady();
    await this.decisions.liftDue();
    await this.escalate();
    if (Date.now() - this.lastHousekeeping > HOUSEKEEPING_MS) {
      this.lastHousekeeping = Date.now();
      await this.expireExports();
    }
  }

  /** Steps in flight end before the worker stops (each keeps its lease until then; none is left to lapse). */
  override async onApplicationShutdown(): Promise<void> {
    await super.onApplicationShutdown();
    await Promise.allSettled([...this.running]);
  }

  private async claim(limit: number): Promise<ClaimedStep[]> {
    return this.ds.transaction(async (em) => {
      // A legal hold placed meanwhile is seen (placing one takes this lock exclusively, then refuses while an erase step runs);
      // while one is being placed, this poll claims nothing.
      if (!(await tryLockHeldSetShared(em))) return [];
      const [rows] = await em.query(
        `UPDATE request_steps s SET status = 'running', attempts = s.attempts + 1, lease_until = now() + make_interval(secs => $1),
                -- Still running when claimed: its lease ran out, its worker gone (SET reads the row as it was).
                progress = CASE WHEN s.status = 'running' THEN jsonb_set(coalesce(s.progress, '{}'), '{lapsed}', to_jsonb(coalesce((s.progress->>'lapsed')::int, 0) + 1)) ELSE s.progress END
           FROM requests r
          WHERE r.id = s.request_id AND (s.request_id, s.service) IN (
            SELECT s2.request_id, s2.service FROM request_steps s2 JOIN requests r2 ON r2.id = s2.request_id
             WHERE ((s2.status = 'pending' AND s2.next_attempt_at <= now()) OR (s2.status = 'running' AND s2.lease_until < now()))
               -- A restriction's or objection's step asks the service once its event is out (a row no longer in the
               -- outbox was sent, and went with the outbox's housekeeping).
               AND (s2.action <> 'notify' OR NOT EXISTS (SELECT 1 FROM outbox o WHERE o.id = (r2.details->>'eventId')::uuid AND o.sent_at IS NULL))
               -- A restriction's question names no subject: its step is asked also after an erasure took the subject's id.
               AND r2.status IN ('received', 'in_progress') AND (r2.user_id IS NOT NULL OR s2.action = 'notify')
               AND NOT EXISTS (SELECT 1 FROM request_steps p WHERE p.request_id = s2.request_id AND p.phase < s2.phase AND p.status <> 'completed')
               AND NOT (r2.type = 'erasure' AND EXISTS (SELECT 1 FROM legal_holds h WHERE h.user_id = r2.user_id AND h.released_at IS NULL))
             ORDER BY s2.next_attempt_at LIMIT ${limit}
             FOR UPDATE OF s2 SKIP LOCKED)
        RETURNING s.request_id, s.service, s.action, s.attempts, s.progress, r.user_id, r.scope, r.type, r.details->>'eventId' AS event_id,
                  CASE WHEN s.action = 'export' THEN (SELECT coalesce(sum(octet_length(p.sealed)), 0) FROM export_parts p WHERE p.request_id = s.request_id AND p.service <> s.service) END AS stored_bytes`,
        [this.config.PRIVACY_STEP_LEASE_MS / 1000],
      );
      const claimed: ClaimedStep[] = rows.map((r: any) => ({
        requestId: r.request_id,
        service: r.service,
        action: r.action,
        attempts: r.attempts,
        progress: r.progress,
        ...(r.stored_bytes !== null ? { storedBytes: Number(r.stored_bytes) } : {}),
        userId: r.user_id,
        scope: r.scope,
        ...(r.action === 'notify' ? { event: { id: r.event_id, type: r.type === 'restriction' ? 'privacy.subject.restricted' : 'privacy.subject.objected' } } : {}),
      }));
      await this.markStarted(em, claimed.map((c) => c.requestId));
      return claimed;
    });
  }

  /** Claimed steps not run after all: pending again, due now, the attempt not counted. */
  private async release(steps: ClaimedStep[]): Promise<void> {
    for (const step of steps) {
      await this.ds.query(
        `UPDATE request_steps SET status = 'pending', attempts = attempts - 1, lease_until = NULL, next_attempt_at = now()
          WHERE request_id = $1 AND service = $2 AND status = 'running' AND attempts = $3`,
        [step.requestId, step.service, step.attempts],
      );
    }
  }

  /** Requests a step of which was taken up (or done) are `in_progress` from `received`, audited once. */
  private async markStarted(em: EntityManager, requestIds: string[]): Promise<void> {
    const ids = [...new Set(requestIds)];
    if (!ids.length) return;
    const [started]: [{ id: string; subject_hash: string }[], number] = await em.query(
      `UPDATE requests SET status = 'in_progress', updated_at = now() WHERE id = ANY($1) AND status = 'received' RETURNING id, subject_hash`,
      [ids],
    );
    for (const r of started) await this.audit.append(em, { actor: 'system', action: 'request.started', requestId: r.id, subjectHash: r.subject_hash });
  }

  /**
   * A long export or erasure keeps its step: without this, a step running longer than its lease was taken
   * again by another worker (or this one) while it still ran, and the work done twice. An erasure's
   * slices so far are kept with it (`progress`), for whichever attempt finishes it.
   */
  private async renewLease(step: ClaimedStep, progress?: ErasureProgress): Promise<void> {
    const [, renewed] = await this.ds.query(
      `UPDATE request_steps SET lease_until = now() + make_interval(secs => $4),
              progress = CASE WHEN $5::jsonb IS NULL THEN progress ELSE coalesce(progress, '{}'::jsonb) || $5::jsonb END
        WHERE request_id = $1 AND service = $2 AND status = 'running' AND attempts = $3`,
      [step.requestId, step.service, step.attempts, this.config.PRIVACY_STEP_LEASE_MS / 1000, progress ? JSON.stringify(progress) : null],
    );
    if (!renewed) throw new Error(`the ${step.service} step of request ${step.requestId} was taken up again meanwhile`);
  }

  private async execute(step: ClaimedStep): Promise<void> {
    const lapsed = step.progress?.lapsed ?? 0;
    if (step.action === 'export' && lapsed >= MAX_LAPSES) {
      return this.failed(step, new HopelessStep(`its worker stopped ${lapsed} times while running it (a crash, or killed for its memory?)`));
    }
    let outcome: StepOutcome;
    try {
      outcome = await this.runner.run(step, (progress) => this.renewLease(step, progress));
    } catch (err) {
      return this.failed(step, err);
    }
    // Kept as a failure of the step (tried again, or given up), not thrown into the pass: the other steps go on.
    await this.complete(step, outcome).catch((err) => this.failed(step, err));
  }

  private async complete(step: ClaimedStep, outcome: StepOutcome): Promise<void> {
    await this.ds.transaction(async (em) => {
      // Locked: a request another step failed meanwhile (its parts and key gone) keeps no part that comes after.
      const [req]: RequestRow[] = await em.query(`SELECT * FROM requests WHERE id = $1 FOR UPDATE`, [step.requestId]);
      // Only the holder of the current lease may complete it (a slow worker whose lease ran out may not).
      const [, updated] = await em.query(
        `UPDATE request_steps SET status = 'completed', completed_at = now(), lease_until = NULL, last_error = NULL, result = $4, progress = NULL
          WHERE request_id = $1 AND service = $2 AND status = 'running' AND attempts = $3`,
        [step.requestId, step.service, step.attempts, JSON.stringify(countsOf(outcome))],
      );
      if (!updated) return;
      if (outcome.kind === 'exported') {
        // Without its key (voided meanwhile, or gone with the request failing) the part is not kept.
        if (!req.wrapped_key) return;
        const sealed = this.cipher.seal(req.wrapped_key, req.id, Buffer.from(JSON.stringify(outcome.section), 'utf8'), `part:${step.service}`);
        await em.query(`INSERT INTO export_parts (request_id, service, sealed) VALUES ($1, $2, $3) ON CONFLICT (request_id, service) DO UPDATE SET sealed = EXCLUDED.sealed`, [req.id, step.service, sealed]);
      } else if (outcome.kind === 'erased') {
        for (const p of outcome.processors) {
          await em.query(
            `INSERT INTO processor_notices (request_id, processor, service, action, status) VALUES ($1, $2, $3, 'erasure', $4) ON CONFLICT DO NOTHING`,
            [req.id, p.id, step.service, p.confirmed ? 'confirmed' : 'delegated'],
          );
        }
      }
      await this.audit.append(em, {
        actor: 'system',
        action: `step.completed`,
        requestId: req.id,
        subjectHash: req.subject_hash,
        details: {
          service: step.service,
          action: step.action,
          attempts: step.attempts,
          counts: countsOf(outcome),
          ...(outcome.kind === 'erased' && outcome.processors.length ? { processorsTold: outcome.processors } : {}),
          ...(outcome.kind === 'handled' ? { consumers: outcome.consumers } : {}),
        },
      });
    });
    this.steps.inc({ service: step.service, action: step.action, outcome: 'completed' });
  }

  private async failed(step: ClaimedStep, err: unknown): Promise<void> {
    const message = (err as Error)?.message ?? String(err);
    const max = this.config.PRIVACY_STEP_MAX_ATTEMPTS;
    // An erasure still under way is no failure: it goes on at the next attempt, after the first retry delay.
    const continues = err instanceof ErasureContinues;
    // Attempts of a long erasure that went on are no failures: only the others count towards the limit.
    const failures = step.attempts - (step.progress?.continued ?? 0);
    // Nor is a service still to act on a restriction: given up, the request would fail and its subject lose the
    // restriction's hold on retention; it is asked on (escalated as its due date nears), its waits not counted.
    const waiting = err instanceof NotHandledYet;
    const giveUp = !continues && !waiting && (!retryable(err) || (max > 0 && failures >= max));
    await this.ds.transaction(async (em) => {
      if (giveUp) {
        const [, updated] = await em.query(
          `UPDATE request_steps SET status = 'failed', lease_until = NULL, last_error = $4 WHERE request_id = $1 AND service = $2 AND status = 'running' AND attempts = $3`,
          [step.requestId, step.service, step.attempts, message.slice(0, 500)],
        );
        if (!updated) return;
        const [req] = await em.query(`SELECT id, subject_hash, type, due_at FROM requests WHERE id = $1 FOR UPDATE`, [step.requestId]);
        await this.finalizer.fail(em, req, `${step.service} could not ${step.action}: ${message}`);
        return;
      }
      const delayMs = continues ? this.config.PRIVACY_RETRY_BASE_MS : Math.min(this.config.PRIVACY_RETRY_MAX_MS, this.config.PRIVACY_RETRY_BASE_MS * 2 ** Math.min(step.attempts - 1, 30));
      await em.query(
        `UPDATE request_steps SET status = 'pending', lease_until = NULL, last_error = $4, next_attempt_at = now() + make_interval(secs => $5),
                -- An attempt that ended (however) breaks a run of lapses: only lapses in a row count.
                progress = (CASE WHEN $6 THEN jsonb_set(coalesce(progress, '{}'), '{continued}', to_jsonb(coalesce((progress->>'continued')::int, 0) + 1)) ELSE progress END) - 'lapsed'
          WHERE request_id = $1 AND service = $2 AND status = 'running' AND attempts = $3`,
        [step.requestId, step.service, step.attempts, message.slice(0, 500), delayMs / 1000, continues || waiting],
      );
    });
    this.steps.inc({ service: step.service, action: step.action, outcome: giveUp ? 'failed' : continues ? 'continued' : 'retry' });
    const fields = { requestId: step.requestId, service: step.service, action: step.action, attempt: step.attempts, giveUp, err: message };
    if (continues) this.logger.info(fields, 'privacy erasure step goes on at its next attempt');
    else if (waiting && step.attempts < 5) this.logger.info(fields, 'privacy step waits for the service to act on the event');
    else this.logger.warn(fields, 'privacy step failed');
  }

  /**
   * Finishes every request whose steps are all done. One that cannot be finished is passed over for this pass
   * (logged), not left in front of the others: an export whose package cannot be built fails (compliance hears).
   */
  private async finalizeReady(): Promise<void> {
    const passedOver: string[] = [];
    for (;;) {
      let found: RequestRow | undefined;
      try {
        const done = await this.ds.transaction(async (em) => {
          const [req]: RequestRow[] = await em.query(
            `SELECT * FROM requests r WHERE status IN ('received', 'in_progress')
                AND NOT EXISTS (SELECT 1 FROM request_steps s WHERE s.request_id = r.id AND s.status <> 'completed')
                -- An objection is done with compliance's decision (DecisionsService finishes it then).
                AND NOT (r.type = 'objection' AND r.decision IS NULL)
                AND r.id <> ALL($1::uuid[])
              ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED`,
            [passedOver],
          );
          if (!req) return false;
          found = req;
          await this.finalizer.finalize(em, req);
          return true;
        });
        if (!done) return;
      } catch (err) {
        // No request read: the database itself failed, and the pass with it.
        if (!found) throw err;
        passedOver.push(found.id);
        this.logger.error({ requestId: found.id, type: found.type, err: String(err) }, 'could not finish a request; the others go on, it is tried again at the next pass');
        if (failsAlikeEveryTime(err) && ['access', 'portability'].includes(found.type)) {
          const req = found;
          await this.ds.transaction((em) => this.finalizer.fail(em, req, `the export package could not be built: ${(err as Error).message}`));
        }
      }
    }
  }

  /** Open requests within PRIVACY_ESCALATE_DAYS_BEFORE of their due date: compliance hears of each once. */
  async escalate(): Promise<number> {
    return this.ds.transaction(async (em) => {
      const [rows] = await em.query(
        `UPDATE requests SET escalated_at = now() WHERE id IN (
           SELECT id FROM requests WHERE status IN ('received', 'in_progress') AND escalated_at IS NULL
              AND due_at - make_interval(secs => $1) <= now()
            LIMIT 100 FOR UPDATE SKIP LOCKED)
         RETURNING id, type, status, due_at, subject_hash`,
        [this.config.PRIVACY_ESCALATE_DAYS_BEFORE * 86_400],
      );
      for (const r of rows as { id: string; type: any; status: string; due_at: Date; subject_hash: string }[]) {
        await this.outbox.append(em, 'privacy.request.escalated', { requestId: r.id, type: r.type, status: r.status, dueAt: new Date(r.due_at).toISOString(), reason: 'due-soon' });
        await this.audit.append(em, { actor: 'system', action: 'request.escalated', requestId: r.id, subjectHash: r.subject_hash, details: { dueAt: new Date(r.due_at).toISOString() } });
      }
      return rows.length;
    });
  }

  /** Packages past their 7 days go, and with them their keys (crypto-shredding any copy in a backup). */
  async expireExports(): Promise<number> {
    return this.ds.transaction(async (em) => {
      const [, n] = await em.query(`DELETE FROM export_packages WHERE expires_at <= now()`);
      // An UPDATE's answer is [rows, count].
      const [expired]: [{ id: string; subject_hash: string }[], number] = await em.query(
        `UPDATE requests SET wrapped_key = NULL WHERE wrapped_key IS NOT NULL AND download_until <= now() RETURNING id, subject_hash`,
      );
      for (const r of expired) await this.audit.append(em, { actor: 'system', action: 'export.expired', requestId: r.id, subjectHash: r.subject_hash });
      return Number(n ?? 0);
    });
  }
}
