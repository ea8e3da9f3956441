import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { BillingEvents } from '@ally/contracts';
import { Outbox } from '@ally/messaging';
import { currentPeriod } from '../common/workspace-key.js';
import { QuotaService } from './quota.service.js';

/** An event when a workspace reaches 80 % and 100 % of its monthly quota, once per level and month. */
@Injectable()
export class QuotaAlerts {
  private readonly outbox = new Outbox('billing', BillingEvents);

  constructor(private readonly quota: QuotaService) {}

  /** `tokens` just recorded; the in-memory total may lag a refresh behind, which only delays an alert. */
  async afterUsage(em: EntityManager, key: string, period: string, tokens: number): Promise<void> {
    // The total in memory is of the month the quota service is in: usage of another month is not measured against
    // it (one gone by, processed late; or the first of a new month before the service turned to it: a later usage alerts).
    if (period !== currentPeriod() || period !== this.quota.currentPeriod) return;
    const { used, quota } = this.quota.usage(key);
    if (quota <= 0) return;
    const percent = ((used + tokens) / quota) * 100;
    for (const level of [80, 100] as const) {
      if (percent < level) continue;
      const fresh = await em.query(`INSERT INTO quota_alerts (workspace, period, percent) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING percent`, [key, period, level]);
      if (fresh.length) await this.outbox.append(em, 'billing.quota.threshold-reached', { workspace: key, period, percent: level, ownerEmail: null, locale: 'de' });
    }
  }
}
