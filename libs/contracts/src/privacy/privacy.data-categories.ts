import { yearsInDays, type DataCategory } from '../common/data-categories.js';

/** What privacy itself holds. Its own part of a request is done by the saga, not over RPC. */
export const privacyDataCategories: DataCategory[] = [
  {
    service: 'privacy',
    category: 'data-subject-requests',
    description: 'Data-subject requests (type, scope, dates, status per service); after an erasure only a salted hash of the user id remains',
    purposes: ['answering data-subject requests', 'proving that they were answered in time'],
    basis: 'legal obligation (Art. 6(1)(c) GDPR)',
    retentionDays: yearsInDays(3),
    // The proof of what was done (Art. 5(2) GDPR) for as long as claims about it may be raised: no one shortens it.
    legalMinimumDays: yearsInDays(3),
    retentionRule: 'deleted 3 years after the request was closed (regular limitation period, § 195 BGB)',
    processors: ['Hetzner Online GmbH (hosting, EU)'],
  },
  {
    service: 'privacy',
    category: 'export-packages',
    description: 'Copies of the data prepared for an access or portability request, encrypted (AES-256-GCM)',
    purposes: ['handing the data subject a copy of their data (Art. 15(3), Art. 20 GDPR)'],
    basis: 'legal obligation (Art. 6(1)(c) GDPR)',
    retentionDays: 7,
    retentionRule: 'downloadable for 7 days, then deleted with their key',
    processors: ['Hetzner Online GmbH (hosting, EU)'],
  },
  {
    service: 'privacy',
    category: 'consent-records',
    description: 'Pseudonymous subject id, purposes granted or refused, policy version, time and user agent',
    purposes: ['proving consent (Art. 7(1) GDPR)', 'honouring withdrawals'],
    basis: 'consent (Art. 6(1)(a) GDPR)',
    retentionDays: 2 * 365,
    retentionRule: 'a consent is valid 2 years; its record is deleted when it expires',
    processors: ['Webflow, Inc. (the website and its consent forms, USA)', 'Hetzner Online GmbH (hosting, EU)'],
  },
  {
    service: 'privacy',
    category: 'legal-holds',
    description: 'User id, reason and the compliance officer who placed or released a legal hold',
    purposes: ['establishment, exercise or defence of legal claims (Art. 17(3)(e) GDPR)'],
    basis: 'legitimate interest (Art. 6(1)(f) GDPR)',
    retentionDays: yearsInDays(3),
    // The proof of what was done (Art. 5(2) GDPR) for as long as claims about it may be raised: no one shortens it.
    legalMinimumDays: yearsInDays(3),
    retentionRule: 'kept while the hold is active, then 3 years after its release as proof (the regular limitation period, § 195 BGB)',
    processors: ['Hetzner Online GmbH (hosting, EU)'],
  },
  {
    service: 'privacy',
    category: 'erasure-tombstones',
    description: 'Proof that an account was erased: a salted hash of the user id, the request, the scope and the number of rows each service deleted',
    purposes: ['proving that an erasure was carried out (Art. 5(2), Art. 17 GDPR)'],
    basis: 'legal obligation (Art. 6(1)(c) GDPR)',
    retentionDays: yearsInDays(3),
    // The proof of what was done (Art. 5(2) GDPR) for as long as claims about it may be raised: no one shortens it.
    legalMinimumDays: yearsInDays(3),
    // The documentation of a request is kept as long as the request itself.
    retentionRule: 'deleted 3 years after the erasure, as the request it documents (regular limitation period, § 195 BGB)',
    processors: ['Hetzner Online GmbH (hosting, EU)'],
  },
  {
    service: 'privacy',
    category: 'audit-trail',
    description: 'Who did what with data-subject requests, retention runs, policies and legal holds, and when: staff by user id, subjects only as salted hashes; hash-chained',
    purposes: ['demonstrating compliance (Art. 5(2) GDPR)'],
    basis: 'legal obligation (Art. 6(1)(c) GDPR)',
    retentionDays: yearsInDays(3),
    // The proof of what was done (Art. 5(2) GDPR) for as long as claims about it may be raised: no one shortens it.
    legalMinimumDays: yearsInDays(3),
    retentionRule:
      'entries are deleted 3 years after they were written, as the requests they document, oldest first and never while the request or legal hold they concern is kept or the subject is held; the hash of the last deleted entry stays as the anchor the rest of the chain is verified from',
    processors: ['Hetzner Online GmbH (hosting, EU)'],
  },
];
