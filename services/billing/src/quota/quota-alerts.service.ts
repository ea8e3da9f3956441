import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { BillingEvents } from '@ally/contracts';
import { Outbox } from '@ally/messaging';
import { lockNamed } from '@ally/persistence';
import { currentPeriod } from '../common/workspace-key.js';
import { QuotaService } from './quota.service.js';

/**
 * An event when a workspace reaches 80 % and 100 % of its monthly quota, once per level and month, and again when
 * it reaches a level under a higher quota than the one it was raised for (after an upgrade or more seats).
 */
@Injectable()
export class QuotaAlerts {
  private readonly outbox = new Outbox('billing', BillingEvents);

  constructor(private readonly quota: QuotaService) {}

  /**
   * After usage of `key` was recorded in `em`'s transaction. The month's total is read from the ledger as this
   * transaction sees it, not from the quota's memory (a refresh behind): two batches crossing 100 % within one
   * refresh would otherwise both miss the alert, and once the quota refuses, no usage comes to raise it later.
   */
  async afterUsage(em: EntityManager, key: string, period: string): Promise<void> {
    // Usage of another month is not measured against this one's quota (one gone by, processed late).
    if (period !== currentPeriod()) return;
    // Event consumers start before the quota's first load (Nest bootstraps the global module first): measured against
    // the defaults, a paying organisation's usage read as far past its quota, and its owners got both alerts.
    await this.quota.loaded;
    const { quota } = this.quota.usage(key);
    if (quota <= 0) return;
    // One batch of a workspace at a time (replicas take batches side by side): each sees what the one before it
    // committed, so two crossing a level together do not each see only their own share and both stay silent.
    await lockNamed(em, `quota-alerts:${key}`);
    const [{ used }]: { used: string | null }[] = await em.query(`SELECT sum(tokens) AS used FROM ledger WHERE workspace = ANY($1::text[]) AND period = $2`, [
      this.quota.ledgerNames(key),
      period,
    ]);
    const percent = (Number(used ?? 0) / quota) * 100;
    for (const level of [80, 100] as const) {
      if (percent < level) continue;
      const fresh = await em.query(
        `INSERT INTO quota_alerts (workspace, period, percent, quota) VALUES ($1, $2, $3, $4)
         ON CONFLICT (workspace, period, percent) DO UPDATE SET quota = EXCLUDED.quota WHERE quota_alerts.quota < EXCLUDED.quota RETURNING percent`,
        [key, period, level, quota],
      );
      if (fresh.length) await this.outbox.append(em, 'billing.quota.threshold-reached', { workspace: key, period, percent: level, ownerEmail: null, locale: 'de' });
    }
  }
}
