import { Inject, Injectable, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import { DataSource } from 'typeorm';
import type { Logger } from 'pino';
import type { QuotaAnswer } from '@ally/contracts';
import { LOGGER } from '@ally/platform';
import { isPseudonym, Pseudonyms } from '../common/erased-subjects.js';
import { currentPeriod, workspaceKey } from '../common/workspace-key.js';
import { BILLING_CONFIG, type BillingConfig } from '../config.js';
import { PlansService } from '../plans/plans.service.js';
import { LIVE_STATUSES } from '../subscriptions/subscriptions.service.js';

interface Limits {
  plan: string;
  seats: number;
  workspaceCap?: number;
  memberCaps: Map<string, number>;
}

const FREE = (): Limits => ({ plan: 'free', seats: 1, memberCaps: new Map() });

/** How long a sequence number missing from the ledger is looked for again (an insert still uncommitted). */
const GAP_TTL_MS = 10 * 60_000;
const MAX_GAPS = 100_000;
/** At a start, numbers this far below the month's first visible row are looked for too (inserts in flight then). */
const START_LOOKBACK = 1_000;

/**
 * Answers "may this user spend tokens in this workspace now?" from memory:
 * usage totals per workspace and per member for the current month, kept
 * current by tailing the ledger (by its sequence) every QUOTA_REFRESH_MS, so
 * every replica sees every replica's ingest; plans, seats and caps refreshed
 * on the same beat. No SUM per request.
 *
 * A sequence number is taken at insert, not at commit: with two replicas
 * writing, seq 11 can be visible before seq 10. A number skipped by the tail
 * is remembered as a gap and asked for again until it appears (or 10 minutes
 * pass: a rolled-back insert never does), so no usage is lost.
 */
@Injectable()
export class QuotaService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly used = new Map<string, number>();
  private limits = new Map<string, Limits>();
  private lastSeq = 0;
  /** Skipped sequence numbers below lastSeq, with when they were first missed. */
  private readonly gaps = new Map<number, number>();
  private period = currentPeriod();
  /** The quota this replica last wrote to `period_quotas` for `period`, by the row's name (`recordKey`). */
  private readonly recorded = new Map<string, number>();
  /** Workspaces whose quota was recorded for `period`: written again when they change, also once they drop out of the limits. */
  private readonly recordedKeys = new Set<string>();
  private timer?: NodeJS.Timeout;
  private refreshing?: Promise<void>;
  /** A refresh waiting for the one in flight, for callers that came while it ran. */
  private following?: Promise<void>;
  private markLoaded!: () => void;
  private neverLoaded!: (err: Error) => void;
  /**
   * Settles once plans, seats and caps were first read: before, every workspace would look like Free with one seat.
   * Rejects when the first read failed (the start fails) or the service stops before it: nobody waits for ever.
   */
  readonly loaded = new Promise<void>((resolve, reject) => ((this.markLoaded = resolve), (this.neverLoaded = reject)));

  constructor(
    private readonly ds: DataSource,
    private readonly plans: PlansService,
    private readonly pseudonyms: Pseudonyms,
    @Inject(BILLING_CONFIG) private readonly config: BillingConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    // Handled from the start: a rejection nobody awaits (no usage came) would otherwise end the process.
    this.loaded.catch(() => undefined);
  }

  async onApplicationBootstrap() {
    await this.refresh().catch((err) => {
      this.neverLoaded(new Error(`the quota could not be read: ${String(err)}`));
      throw err;
    });
    // A tick finds the load in flight enough (only callers that just changed something wait for the next one).
    this.timer = setInterval(() => {
      if (!this.refreshing) void this.startLoad().catch((err) => this.logger.warn({ err: String(err) }, 'quota refresh failed'));
    }, this.config.QUOTA_REFRESH_MS);
  }

  onModuleDestroy() {
    if (this.timer) clearInterval(this.timer);
    this.neverLoaded(new Error('billing stopped before its quota was read'));
  }

  check(workspace: string, userId: string): QuotaAnswer {
    const key = workspaceKey(workspace, userId);
    const limits = this.limits.get(key) ?? FREE();
    const quota = this.quotaOf(limits);
    const used = this.usedOf(key);
    if (used >= quota) return { allowed: false, reason: `The monthly token quota of this workspace (${quota} tokens, plan ${limits.plan}) is used up` };
    if (limits.workspaceCap !== undefined && used >= limits.workspaceCap) return { allowed: false, reason: `The workspace's monthly spend cap (${limits.workspaceCap} tokens) is reached` };
    const memberCap = limits.memberCaps.get(userId);
    const memberUsed = this.used.get(`${key}|${userId}`) ?? 0;
    if (memberCap !== undefined && memberUsed >= memberCap) return { allowed: false, reason: `Your monthly spend cap (${memberCap} tokens) is reached` };
    // What is left under the tightest limit: chat refuses a prompt larger than this, and counts its own answers off it meanwhile.
    const remaining = Math.min(quota - used, (limits.workspaceCap ?? Infinity) - used, (memberCap ?? Infinity) - memberUsed);
    return { allowed: true, remaining };
  }

  usage(key: string): { used: number; quota: number } {
    return { used: this.usedOf(key), quota: this.quotaOf(this.limits.get(key) ?? FREE()) };
  }

  /**
   * The ledger's names for a workspace's usage: a private workspace's rows an
   * erasure renamed to its owner's pseudonym still count against its quota
   * (the plan's, not the person's), also on a replica that read them renamed.
   */
  ledgerNames(key: string): string[] {
    const erased = this.recordKey(key);
    return erased === key ? [key] : [key, erased];
  }

  private usedOf(key: string): number {
    return this.ledgerNames(key).reduce((n, name) => n + (this.used.get(name) ?? 0), 0);
  }

  /**
   * Waits for a refresh that includes everything committed so far (a cap just set, tests, the usage API): one in
   * flight may have read before the caller's change, so the caller waits for the next one, started after it
   * (loads run one at a time: they add to the totals).
   */
  async refresh(): Promise<void> {
    if (!this.refreshing) return this.startLoad();
    this.following ??= this.refreshing
      .catch(() => undefined)
      .then(() => {
        this.following = undefined;
        return this.refreshing ?? this.startLoad();
      });
    return this.following;
  }

  private startLoad(): Promise<void> {
    return (this.refreshing = this.load().finally(() => (this.refreshing = undefined)));
  }

  private quotaOf(l: Limits): number {
    const plan = this.plans.plans.find((p) => p.id === l.plan) ?? this.plans.get('free');
    return plan.monthlyTokensPerSeat * Math.max(1, l.seats);
  }

  private async load(): Promise<void> {
    const period = currentPeriod();
    if (period !== this.period) {
      // A new month starts from zero.
      this.period = period;
      this.used.clear();
      this.gaps.clear();
      this.recorded.clear();
      this.recordedKeys.clear();
      this.lastSeq = 0;
    }
    if (this.lastSeq === 0) {
      // Start near this month's first visible row: far earlier numbers are other months, not gaps.
      const [first] = await this.ds.query(`SELECT min(seq) AS seq FROM ledger WHERE period = $1`, [period]);
      if (first?.seq != null) this.lastSeq = Math.max(0, Number(first.seq) - 1 - START_LOOKBACK);
    }
    const rows: { seq: string; workspace: string; user_id: string; tokens: string }[] = await this.ds.query(
      `SELECT seq, workspace, user_id, tokens FROM ledger WHERE period = $2 AND (seq > $1 OR seq = ANY($3::bigint[])) ORDER BY seq`,
      [this.lastSeq, period, [...this.gaps.keys()]],
    );
    const seen = new Set<number>();
    for (const r of rows) {
      const seq = Number(r.seq);
      if (seq <= this.lastSeq && !this.gaps.delete(seq)) continue;
      seen.add(seq);
      const n = Number(r.tokens);
      this.used.set(r.workspace, (this.used.get(r.workspace) ?? 0) + n);
      this.used.set(`${r.workspace}|${r.user_id}`, (this.used.get(`${r.workspace}|${r.user_id}`) ?? 0) + n);
    }
    const top = rows.length ? Math.max(this.lastSeq, Number(rows.at(-1)!.seq)) : this.lastSeq;
    const now = Date.now();
    // With no start found (the month's first row committed after we looked), numbers far below the first seen are other months.
    const from = this.lastSeq > 0 ? this.lastSeq + 1 : Math.max(1, (rows.length ? Number(rows[0].seq) : top) - START_LOOKBACK);
    for (let seq = from; seq < top; seq++) if (!seen.has(seq)) this.gaps.set(seq, now);
    this.lastSeq = top;
    for (const [seq, since] of this.gaps) if (now - since > GAP_TTL_MS || this.gaps.size > MAX_GAPS) this.gaps.delete(seq);
    const limits = new Map<string, Limits>();
    const subs = await this.ds.query(`SELECT workspace, plan, status, seats FROM subscriptions`);
    for (const s of subs) if (LIVE_STATUSES.includes(s.status)) limits.set(s.workspace, { plan: s.plan, seats: s.seats, memberCaps: new Map() });
    const seats = await this.ds.query(`SELECT workspace, members FROM seat_counts`);
    for (const s of seats) if (!limits.has(s.workspace)) limits.set(s.workspace, { ...FREE(), seats: s.members });
    const caps = await this.ds.query(`SELECT workspace, user_id, monthly_tokens FROM caps`);
    for (const c of caps) {
      const l = limits.get(c.workspace) ?? FREE();
      if (c.user_id === '') l.workspaceCap = Number(c.monthly_tokens);
      else l.memberCaps.set(c.user_id, Number(c.monthly_tokens));
      limits.set(c.workspace, l);
    }
    this.limits = limits;
    this.markLoaded();
    // The month's record is for the usage API later; failing to write it must not stop quota answers.
    await this.recordQuotas(period).catch((err) => this.logger.warn({ err: String(err) }, 'recording the month\'s quotas failed; tried again at the next refresh'));
  }

  /** The month the totals in memory are of (it turns at the first refresh of a new month). */
  get currentPeriod(): string {
    return this.period;
  }

  /**
   * Writes the month's quota of every workspace with limits or usage when it
   * changed (plan, seats), so a past month shows its own quota later. Every
   * replica writes the same values; only a change touches a row.
   */
  private async recordQuotas(period: string): Promise<void> {
    // Workspaces with limits or usage now, and those recorded earlier this month (a subscription that ended drops to Free).
    // (A pseudonym's usage counts for its private workspace, as it would have on a replica that read it before the erasure.)
    const keys = new Set([...this.recordedKeys, ...this.limits.keys(), ...[...this.used.keys()].filter((k) => !k.includes('|') && !isPseudonym(k))]);
    const quotas = new Map<string, number>();
    for (const key of keys) {
      const at = this.recordKey(key);
      // After an erasure both `private:<id>` (usage in memory) and the pseudonym (its renamed plan) name one row: the plan's holds.
      if (quotas.has(at) && key !== at) continue;
      quotas.set(at, this.usage(key).quota);
      this.recordedKeys.add(key);
    }
    const changed = [...quotas].filter(([at, q]) => this.recorded.get(at) !== q);
    if (!changed.length) return;
    await this.ds.query(
      `INSERT INTO period_quotas (workspace, period, token_quota) SELECT w, $1, q FROM unnest($2::text[], $3::bigint[]) AS t(w, q)
       ON CONFLICT (workspace, period) DO UPDATE SET token_quota = EXCLUDED.token_quota WHERE period_quotas.token_quota <> EXCLUDED.token_quota`,
      [period, changed.map(([at]) => at), changed.map(([, q]) => q)],
    );
    for (const [at, q] of changed) this.recorded.set(at, q);
  }

  /** The quota of a month gone by as it was recorded then; null for a month before quotas were recorded. */
  async quotaOfPeriod(key: string, period: string): Promise<number | null> {
    if (period === this.period) return this.usage(key).quota;
    const [row] = await this.ds.query(`SELECT token_quota FROM period_quotas WHERE workspace = $1 AND period = $2`, [this.recordKey(key), period]);
    return row ? Number(row.token_quota) : null;
  }

  /**
   * A private workspace's months are kept under its owner's pseudonym, the name
   * an erasure gives their books: nothing there to rename, and nothing a refresh
   * racing the erasure could write back under their id.
   */
  private recordKey(key: string): string {
    return key.startsWith('private:') ? this.pseudonyms.of(key.slice('private:'.length)) : key;
  }
}
