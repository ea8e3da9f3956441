import { Inject, Injectable, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import OpenAI from 'openai';
import type { Logger } from 'pino';
import { DataSource } from 'typeorm';
import { withPrefix } from '@ally/contracts';
import { broadcast, listenToBroadcasts } from '@ally/messaging';
import { LOGGER, NATS } from '@ally/platform';
import { ProviderClients } from '../completions/provider-clients.js';
import { CHAT_CONFIG, type ChatConfig } from '../config.js';
import { isEuRegion } from './eu-regions.js';
import type { Deployment } from './model-catalog.js';
import { RouterService } from './router.service.js';

/** Core NATS, every chat replica (no queue group): a deployment quarantined, or released by its probe. */
export const QUARANTINE_SUBJECT = 'ally.chat.deployments.outside-eu';

/** How often every replica reads the list (a broadcast it missed); a quarantine this young stays meanwhile. */
const RELOAD_MS = 30_000;
/** A quarantined deployment that keeps reporting outside the EU (callers who allow that still use it) refreshes its row at most this often. */
const REFRESH_MS = 5_000;
/** What a probe sends: a prompt of no one. */
const PROBE = { messages: [{ role: 'user' as const, content: 'ping' }], max_tokens: 1, store: false };
const PROBE_TIMEOUT_MS = 10_000;

type Announcement = { deploymentId: unknown; released?: unknown };

/**
 * Keeps a deployment configured as EU that said it served from outside the EU
 * (Azure's `x-ms-region`) from EU-only callers on every chat replica, also one
 * started later: the list is in Postgres, a broadcast tells the running
 * replicas at once, and each reads the list every 30 s. A real prompt never
 * finds out whether it is back: every `OUTSIDE_EU_RECHECK_MS` one replica sends
 * it a probe without personal data, and only an answer (or a refusal) that
 * names an EU region releases it, unless it was reported outside the EU again
 * since the probe was claimed.
 */
@Injectable()
export class OutsideEuQuarantine implements OnApplicationBootstrap, OnModuleDestroy {
  private stopListening?: () => void;
  private timer?: NodeJS.Timeout;
  private checking?: Promise<void>;
  /** Stops a probe under way at shutdown: answers being written need the time. */
  private readonly stopping = new AbortController();
  /** Reports whose row is not written yet (Postgres away): kept here, and written at the next check. */
  private readonly unrecorded = new Map<string, string>();
  /** When this replica last wrote each deployment's report. */
  private readonly recordedAt = new Map<string, number>();
  /** Reports that came while the last write was too recent: written once it is old enough. */
  private readonly deferred = new Map<string, NodeJS.Timeout>();

  constructor(
    private readonly router: RouterService,
    private readonly clients: ProviderClients,
    private readonly ds: DataSource,
    @Inject(NATS) private readonly nats: NatsConnection,
    @Inject(CHAT_CONFIG) private readonly config: ChatConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /**
   * This replica keeps EU-only callers from it at once and records the report for every replica, which the
   * running ones hear of once it is written. Reported again while quarantined (callers who allow it outside the
   * EU still reach it), the row is refreshed: a probe claimed before that does not release it. At most one write a
   * deployment per refresh interval: a report within it is kept (this replica does not take a release meanwhile)
   * and written when the interval is over, not dropped (a probe claimed before it released the deployment).
   */
  announce(deploymentId: string, reportedRegion: string): void {
    this.router.quarantineOutsideEu(deploymentId);
    this.unrecorded.set(deploymentId, reportedRegion);
    const wait = (this.recordedAt.get(deploymentId) ?? -Infinity) + this.refreshMs - Date.now();
    if (wait <= 0) return this.write(deploymentId);
    if (this.deferred.has(deploymentId)) return;
    const timer = setTimeout(() => {
      this.deferred.delete(deploymentId);
      this.write(deploymentId);
    }, wait);
    timer.unref();
    this.deferred.set(deploymentId, timer);
  }

  /** At most one write of a deployment's report per this long, per replica. */
  private get refreshMs(): number {
    return Math.min(REFRESH_MS, this.config.OUTSIDE_EU_RECHECK_MS / 2);
  }

  private write(deploymentId: string): void {
    const reportedRegion = this.unrecorded.get(deploymentId);
    if (reportedRegion === undefined || this.stopping.signal.aborted) return;
    this.recordedAt.set(deploymentId, Date.now());
    void this.record(deploymentId, reportedRegion).catch((err: Error) =>
      this.logger.error({ deployment: deploymentId, err: err.message }, 'could not record a deployment reported outside the EU; this replica keeps it from EU-only callers and tries again'),
    );
  }

  private async record(deploymentId: string, reportedRegion: string): Promise<void> {
    await this.ds.query(
      `INSERT INTO outside_eu_deployments (deployment_id, reported_region) VALUES ($1, $2)
       ON CONFLICT (deployment_id) DO UPDATE SET reported_region = EXCLUDED.reported_region, reported_at = now()`,
      [deploymentId, reportedRegion],
    );
    if (this.unrecorded.get(deploymentId) === reportedRegion) this.unrecorded.delete(deploymentId);
    // After the row: a replica that hears of it and of a release at once finds it when it looks.
    broadcast(this.nats, this.subject, { deploymentId });
  }

  async onApplicationBootstrap(): Promise<void> {
    this.stopListening = listenToBroadcasts<Announcement>(this.nats, this.subject, this.logger, 'quarantine', ({ deploymentId, released }) => {
      if (typeof deploymentId !== 'string') return;
      if (released !== true) this.router.quarantineOutsideEu(deploymentId);
      // Broadcasts of two replicas may arrive in either order: a release holds only if the row is still gone.
      else void this.releaseIfGone(deploymentId).catch(() => undefined);
    });
    // Before the first request: a replica started while a deployment is quarantined keeps EU-only callers from it too.
    await this.reload();
    this.timer = setInterval(() => {
      this.checking ??= this.check().finally(() => (this.checking = undefined));
    }, Math.min(RELOAD_MS, this.config.OUTSIDE_EU_RECHECK_MS));
    this.timer.unref();
  }

  async onModuleDestroy(): Promise<void> {
    clearInterval(this.timer);
    for (const timer of this.deferred.values()) clearTimeout(timer);
    this.stopping.abort();
    this.stopListening?.();
    await this.checking;
  }

  private async check(): Promise<void> {
    try {
      for (const [id, region] of this.unrecorded) await this.record(id, region);
      await this.probeDue();
      await this.reload();
    } catch (err) {
      if (!this.stopping.signal.aborted) this.logger.warn({ err: (err as Error).message }, 'could not read or probe the deployments reported outside the EU; tried again shortly');
    }
  }

  private async reload(): Promise<void> {
    const rows: { deployment_id: string }[] = await this.ds.query(`SELECT deployment_id FROM outside_eu_deployments`);
    this.router.replaceOutsideEu([...rows.map((r) => r.deployment_id), ...this.unrecorded.keys()], RELOAD_MS);
  }

  private async releaseIfGone(deploymentId: string): Promise<void> {
    const rows = await this.ds.query(`SELECT 1 FROM outside_eu_deployments WHERE deployment_id = $1`, [deploymentId]);
    if (rows.length === 0 && !this.unrecorded.has(deploymentId)) this.router.releaseOutsideEu(deploymentId);
  }

  /**
   * Claims the quarantined deployments whose probe is due (each by one replica) and probes them. Not one reported
   * within the last refresh interval: a replica may still hold a report of it back (`announce`), which a release
   * meanwhile would not see, and EU-only callers would reach it until that report is written.
   */
  private async probeDue(): Promise<void> {
    // An UPDATE answers [rows, count]; the time as text keeps its microseconds (a Date would drop them).
    const [due]: [{ deployment_id: string; reported_at: string }[], number] = await this.ds.query(
      `UPDATE outside_eu_deployments SET checked_at = now()
        WHERE coalesce(checked_at, reported_at) <= now() - make_interval(secs => $1::double precision / 1000)
          AND reported_at <= now() - make_interval(secs => $2::double precision / 1000)
        RETURNING deployment_id, reported_at::text`,
      [this.config.OUTSIDE_EU_RECHECK_MS, this.refreshMs],
    );
    for (const { deployment_id: id, reported_at: reportedAt } of due) {
      if (this.stopping.signal.aborted) return;
      const d = this.router.deployment(id);
      // Not an EU deployment of this replica's catalog (a rollout may be changing it): the replicas that know it as
      // EU probe it; for the others its row changes nothing.
      if (!d?.euResident) continue;
      const region = await this.probe(d);
      if (region === undefined) continue;
      if (isEuRegion(region)) await this.release(id, reportedAt, region);
      else {
        await this.ds.query(`UPDATE outside_eu_deployments SET reported_region = $2 WHERE deployment_id = $1`, [id, region]);
        this.logger.warn({ deployment: id, reportedRegion: region }, 'a deployment configured as EU-resident still reports a region outside the EU; EU-only callers stay away from it');
      }
    }
  }

  /**
   * The region the deployment named in its answer to the probe (a refusal names it as well), or undefined when it
   * named none: no answer, or one from something in front of it, is no evidence either way.
   */
  private async probe(d: Deployment): Promise<string | undefined> {
    try {
      const { response } = await this.clients
        .for(d)
        .chat.completions.create({ model: d.deployment ?? d.model, ...PROBE }, { timeout: PROBE_TIMEOUT_MS, signal: this.stopping.signal })
        .withResponse();
      return response.headers.get('x-ms-region') ?? undefined;
    } catch (err) {
      if (err instanceof OpenAI.APIError && err.headers?.get('x-ms-region')) return err.headers.get('x-ms-region')!;
      if (!this.stopping.signal.aborted) this.logger.warn({ deployment: d.id, err: (err as Error).message }, 'the probe of a deployment reported outside the EU named no region; tried again later');
      return undefined;
    }
  }

  /** Unless it was reported outside the EU again since the probe was claimed. */
  private async release(id: string, reportedAt: string, region: string): Promise<void> {
    const [, deleted] = await this.ds.query(`DELETE FROM outside_eu_deployments WHERE deployment_id = $1 AND reported_at <= $2::timestamptz`, [id, reportedAt]);
    if (!deleted) return;
    this.router.releaseOutsideEu(id);
    broadcast(this.nats, this.subject, { deploymentId: id, released: true });
    this.logger.info({ deployment: id, reportedRegion: region }, 'a deployment reported outside the EU answers from the EU again: EU-only callers may use it again');
  }

  private get subject(): string {
    return withPrefix(this.config.NATS_SUBJECT_PREFIX, QUARANTINE_SUBJECT);
  }
}
