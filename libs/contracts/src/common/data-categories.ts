/**
 * What personal data each service holds and how long it may keep it.
 * privacy builds the register of processing activities and the retention plan
 * from this list, so a new category is declared here or it does not exist.
 */
export const LEGAL_BASES = [
  'contract (Art. 6(1)(b) GDPR)',
  'legal obligation (Art. 6(1)(c) GDPR)',
  'legitimate interest (Art. 6(1)(f) GDPR)',
  'consent (Art. 6(1)(a) GDPR)',
] as const;
export type LegalBasis = (typeof LEGAL_BASES)[number];

/** The services that hold personal data. */
export const DATA_HOLDING_SERVICES = ['identity', 'chat', 'billing', 'privacy', 'notify'] as const;

/** A period of whole years in days, with the most leap days such a span can hold: never a day short of the years. */
export const yearsInDays = (years: number): number => years * 365 + Math.ceil(years / 4);

export interface DataCategory {
  service: (typeof DATA_HOLDING_SERVICES)[number];
  category: string;
  description: string;
  purposes: string[];
  basis: LegalBasis;
  /** null: kept while the account exists, deleted on erasure. */
  retentionDays: number | null;
  /** A period the law sets (tax and commercial records): compliance may keep them longer, never shorter. Other periods are maximums. */
  legalMinimumDays?: number;
  retentionRule: string;
  processors: string[];
}
