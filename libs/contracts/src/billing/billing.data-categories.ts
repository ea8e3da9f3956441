import { yearsInDays, type DataCategory } from '../common/data-categories.js';

/** Ten years counted in days, with the most leap days ten years can hold (3): never a day short. The privacy policy's period. */
export const INVOICE_YEARS_IN_DAYS = yearsInDays(10);
/**
 * What the law asks since 1 January 2025: invoices are booking vouchers, kept eight years (§ 147(3) AO,
 * § 14b(1) UStG, as the Fourth Bureaucracy Relief Act amended them): compliance may shorten the policy's ten to that.
 */
export const INVOICE_LEGAL_YEARS_IN_DAYS = yearsInDays(8);

export const billingDataCategories: DataCategory[] = [
  {
    service: 'billing',
    category: 'contract',
    description: 'Customer and subscription records (Stripe ids, plan, seats, status), spend caps',
    purposes: ['billing the contract'],
    basis: 'contract (Art. 6(1)(b) GDPR)',
    retentionDays: yearsInDays(4),
    retentionRule: 'deleted 4 years after the contract ended (the subscription with its customer record; a customer that never subscribed 4 years after it was made)',
    processors: ['Stripe, Inc. (payments, USA; EU-US Data Privacy Framework)', 'Hetzner Online GmbH (hosting, EU)'],
  },
  {
    service: 'billing',
    category: 'usage-ledger',
    description: 'Tokens used per message, user, model and workspace, with cost',
    purposes: ['usage-based billing', 'quotas'],
    basis: 'contract (Art. 6(1)(b) GDPR)',
    retentionDays: yearsInDays(4),
    retentionRule: 'deleted 4 years after the period ended',
    processors: ['Stripe, Inc. (billing meters, USA; EU-US Data Privacy Framework)', 'Hetzner Online GmbH (hosting, EU)'],
  },
  {
    service: 'billing',
    category: 'invoices',
    description: 'Invoices mirrored from Stripe (number, amounts, dates, customer reference)',
    purposes: ['bookkeeping and tax law'],
    basis: 'legal obligation (Art. 6(1)(c) GDPR)',
    // Ten years from the end of the invoice's calendar year: 3,653 days are ten years with their leap days.
    retentionDays: INVOICE_YEARS_IN_DAYS,
    legalMinimumDays: INVOICE_LEGAL_YEARS_IN_DAYS,
    retentionRule:
      'kept 10 years from the end of the calendar year of the invoice, as the privacy policy says; the law asks 8 (§ 147(3) AO, § 257(4) HGB, § 14b(1) UStG since 2025); after an erasure request restricted and pseudonymised',
    processors: ['Stripe, Inc. (invoicing, USA; EU-US Data Privacy Framework)', 'Pathway Solutions GmbH (bookkeeping, Germany)', 'Hetzner Online GmbH (hosting, EU)'],
  },
];
