import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { allDataCategories, findCategory, type Actor, type DataCategory, type RetentionPolicyView } from '@ally/contracts';
import { AuditTrail } from '../audit/audit-trail.service.js';
import { RetentionBelowLegalMinimum, UnknownCategory } from '../common/privacy-errors.js';

interface PolicyRow {
  service: string;
  category: string;
  retention_days: number | null;
  basis: string;
  updated_at: Date;
  updated_by: string;
}

export interface PolicyUpdate {
  service: RetentionPolicyView['service'];
  category: string;
  retentionDays: number | null;
  basis?: RetentionPolicyView['basis'];
}

/**
 * Retention per data category: the defaults declared in contracts, overridden
 * by the compliance team (each change an audit entry). A period the law sets
 * (`legalMinimumDays`) cannot be cut; the others are maximums, and only
 * shorter is allowed (the contract refuses longer). The legal basis is the declared one.
 */
@Injectable()
export class RetentionPoliciesService {
  constructor(
    private readonly ds: DataSource,
    private readonly audit: AuditTrail,
  ) {}

  async list(): Promise<RetentionPolicyView[]> {
    const rows: PolicyRow[] = await this.ds.query(`SELECT * FROM retention_policies`);
    return allDataCategories.map((c) => {
      const o = rows.find((r) => r.service === c.service && r.category === c.category);
      return {
        service: c.service,
        category: c.category,
        retentionDays: o ? withinLaw(o.retention_days, c) : c.retentionDays,
        basis: c.basis,
        retentionRule: c.retentionRule,
        defaultRetentionDays: c.retentionDays,
        updatedAt: o ? new Date(o.updated_at).toISOString() : null,
        updatedBy: o?.updated_by ?? null,
      };
    });
  }

  async update(actor: Actor, updates: PolicyUpdate[]): Promise<RetentionPolicyView[]> {
    for (const u of updates) {
      const c = findCategory(u.service, u.category);
      if (!c) throw new UnknownCategory(`${u.service}/${u.category}`);
      if (c.legalMinimumDays !== undefined && u.retentionDays !== null && u.retentionDays < c.legalMinimumDays) throw new RetentionBelowLegalMinimum(c.category, c.legalMinimumDays);
    }
    const before = await this.list();
    await this.ds.transaction(async (em) => {
      for (const u of updates) {
        const c = findCategory(u.service, u.category)!;
        const old = before.find((p) => p.service === u.service && p.category === u.category)!;
        await em.query(
          `INSERT INTO retention_policies (service, category, retention_days, basis, updated_at, updated_by) VALUES ($1, $2, $3, $4, now(), $5)
           ON CONFLICT (service, category) DO UPDATE SET retention_days = EXCLUDED.retention_days, basis = EXCLUDED.basis, updated_at = now(), updated_by = EXCLUDED.updated_by`,
          [u.service, u.category, u.retentionDays, c.basis, actor.userId],
        );
        await this.audit.append(em, {
          actor: `staff:${actor.userId}`,
          action: 'retention-policy.updated',
          details: { service: u.service, category: u.category, from: { retentionDays: old.retentionDays }, to: { retentionDays: u.retentionDays } },
        });
      }
    });
    return this.list();
  }
}

/**
 * A stored period as the rules of now allow it: one set before a category's
 * legal minimum grew (or before periods were maximums) counts as the nearest
 * allowed one, so no run deletes what the law, or the policy, says to keep.
 */
function withinLaw(stored: number | null, c: DataCategory): number | null {
  const floor = c.legalMinimumDays ?? 0;
  if (c.retentionDays !== null) return stored === null ? c.retentionDays : Math.max(Math.min(stored, c.retentionDays), floor);
  return stored;
}
