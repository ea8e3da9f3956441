import type { DataCategory } from '@ally/contracts';

/** What compliance set for a category (a `RetentionPolicyView` is one). */
export interface PolicyInForce {
  service: string;
  category: string;
  retentionDays: number | null;
  basis: string;
}

/**
 * A category's retention and legal basis as they hold now, for the register
 * (Art. 30) and a subject's export (Art. 15(1)(d)): compliance's period where
 * it changed the contract's default, said in words that do not contradict it.
 */
export function inForce(c: DataCategory, policies: readonly PolicyInForce[]): { retentionDays: number | null; retention: string; basis: string } {
  const p = policies.find((x) => x.service === c.service && x.category === c.category);
  const retentionDays = p ? p.retentionDays : c.retentionDays;
  const retention =
    retentionDays === c.retentionDays
      ? c.retentionRule
      : retentionDays === null
        ? `kept as the service decides (set by the compliance team; by default: ${c.retentionRule})`
        : `${retentionDays} days (set by the compliance team; by default: ${c.retentionRule})`;
  return { retentionDays, retention, basis: p?.basis ?? c.basis };
}
