import type { DataCategory } from '../common/data-categories.js';

export const notifyDataCategories: DataCategory[] = [
  {
    service: 'notify',
    category: 'delivery-log',
    description: 'Which mail was sent when, its status and Brevo message id; the address only until delivery, a hash after',
    purposes: ['sending transactional email', 'proving delivery'],
    // As the privacy policy names Brevo's mail: an objection pauses the mails the subject may do without.
    basis: 'legitimate interest (Art. 6(1)(f) GDPR)',
    retentionDays: 30,
    retentionRule: 'deleted 30 days after the mail was created',
    processors: ['Sendinblue GmbH / Brevo (transactional email, EU)', 'Hetzner Online GmbH (hosting, EU)'],
  },
  {
    service: 'notify',
    category: 'suppression-list',
    description: 'Hash of addresses that bounced, complained or unsubscribed, with the reason',
    purposes: ['honouring bounces, complaints and unsubscribes'],
    basis: 'legitimate interest (Art. 6(1)(f) GDPR)',
    retentionDays: null,
    retentionRule: 'kept while the objection stands; only a hash of the address',
    processors: ['Hetzner Online GmbH (hosting, EU)'],
  },
];
