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
import { servedInEu } from './eu-regions.js';
import type { Deployment } from './model-catalog.js';
import { RouterService } from './router.service.js';

/** Core NATS, every chat replica (no queue group): a deployment quarantined, or released by its probe. */
export const QUARANTINE_SUBJECT = 'ally.chat.deployments.outside-eu';

/** How often every replica reads the list (a broadcast it missed); a quarantine this young stays meanwhile. */
const RELOAD_MS = 30_000;
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
 * it a probe without personal data, and only an answer (or a refusal) from an
 * EU region releases it.
 */
@Injectable()
export class OutsideEuQuarantine implements OnApplicationBootstrap, OnModuleDestroy {
  private stopListening?: () => void;
  private timer?: NodeJS.Timeout;
  private checking?: Promise<void>;

  constructor(
    private readonly router: RouterService,
    private readonly clients: ProviderClients,
    private readonly ds: DataSource,
    @Inject(NATS) private readonly nats: NatsConnection,
    @Inject(CHAT_CONFIG) private readonly config: ChatConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /** This replica keeps EU-only callers from it at once, records it for every replica, and tells the running ones. */
  announce(deploymentId: string, reportedRegion: string): void {
    // Known already (the users who may go outside the EU are still routed to it, and each answer says so again).
    if (this.router.quarantined(deploymentId)) return;
    this.router.quarantineOutsideEu(deploymentId);
    broadcast(this.nats, this.subject, { deploymentId });
    this.ds
      .query(
        `INSERT INTO outside_eu_deployments (deployment_id, reported_region) VALUES ($1, $2)
         ON CONFLICT (deployment_id) DO UPDATE SET reported_region = EXCLUDED.reported_region, reported_at = now()`,
        [deploymentId, reportedRegion],
      )
      .catch((err: Error) => this.logger.error({ deployment: deploymentId, err: err.message }, 'could not record a deployment reported outside the EU; the other replicas hear of it by broadcast only'));
  }

  async onApplicationBootstrap(): Promise<void> {
    this.stopListening = listenToBroadcasts<Announcement>(this.nats, this.subject, this.logger, 'quarantine', ({ deploymentId, released }) => {
      if (typeof deploymentId !== 'string') return;
      if (released === true) this.router.releaseOutsideEu(deploymentId);
      else this.router.quarantineOutsideEu(deploymentId);
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
    this.stopListening?.();
    await this.checking;
  }

  private async check(): Promise<void> {
    try {
      await this.probeDue();
      await this.reload();
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'could not read or probe the deployments reported outside the EU; tried again shortly');
    }
  }

  private async reload(): Promise<void> {
    const rows: { deployment_id: string }[] = await this.ds.query(`SELECT deployment_id FROM outside_eu_deployments`);
    this.router.replaceOutsideEu(
      rows.map((r) => r.deployment_id),
      RELOAD_MS,
    );
  }

  /** Claims the quarantined deployments whose probe is due (each by one replica) and probes them. */
  private async probeDue(): Promise<void> {
    // An UPDATE answers [rows, count]; the time as text keeps its microseconds (a Date would drop them).
    const [due]: [{ deployment_id: string; reported_at: string }[], number] = await this.ds.query(
      `UPDATE outside_eu_deployments SET checked_at = now()
        WHERE coalesce(checked_at, reported_at) <= now() - make_interval(secs => $1::double precision / 1000)
        RETURNING deployment_id, reported_at::text`,
      [this.config.OUTSIDE_EU_RECHECK_MS],
    );
    for (const { deployment_id: id, reported_at: reportedAt } of due) {
      const d = this.router.deployment(id);
      // Gone from the catalog, or no longer configured as EU: nothing left to keep EU-only callers from.
      if (!d?.euResident) await this.release(id, reportedAt, 'is no longer an EU deployment of the catalog');
      else {
        const region = await this.probe(d);
        if (region === undefined) continue;
        if (servedInEu(d, region)) await this.release(id, reportedAt, `reports ${region ?? 'no region'} again`);
        else {
          await this.ds.query(`UPDATE outside_eu_deployments SET reported_region = $2 WHERE deployment_id = $1`, [id, region]);
          this.logger.warn({ deployment: id, reportedRegion: region }, 'a deployment configured as EU-resident still reports a region outside the EU; EU-only callers stay away from it');
        }
      }
    }
  }

  /** The region the deployment answered the probe from (null: it names none), or undefined when it did not answer. */
  private async probe(d: Deployment): Promise<string | null | undefined> {
    try {
      const { response } = await this.clients
        .for(d)
        .chat.completions.create({ model: d.deployment ?? d.model, ...PROBE }, { timeout: PROBE_TIMEOUT_MS })
        .withResponse();
      return response.headers.get('x-ms-region');
    } catch (err) {
      // A refusal came from where the probe went (a 429 from an Azure region says where as much as an answer).
      if (err instanceof OpenAI.APIError && err.headers) return err.headers.get('x-ms-region');
      this.logger.warn({ deployment: d.id, err: (err as Error).message }, 'the probe of a deployment reported outside the EU got no answer; tried again later');
      return undefined;
    }
  }

  /** Unless it reported outside the EU again since it was claimed. */
  private async release(id: string, reportedAt: string, why: string): Promise<void> {
    const [, deleted] = await this.ds.query(`DELETE FROM outside_eu_deployments WHERE deployment_id = $1 AND reported_at <= $2::timestamptz`, [id, reportedAt]);
    if (!deleted) return;
    this.router.releaseOutsideEu(id);
    broadcast(this.nats, this.subject, { deploymentId: id, released: true });
    this.logger.info({ deployment: id }, `a deployment reported outside the EU ${why}: EU-only callers may use it again`);
  }

  private get subject(): string {
    return withPrefix(this.config.NATS_SUBJECT_PREFIX, QUARANTINE_SUBJECT);
  }
}
