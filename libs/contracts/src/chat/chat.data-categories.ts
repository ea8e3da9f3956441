import type { DataCategory } from '../common/data-categories.js';

export const chatDataCategories: DataCategory[] = [
  {
    service: 'chat',
    category: 'chat-history',
    description: 'Conversations and messages (encrypted per user), assistants, residency receipts',
    purposes: ['providing the assistant', 'showing the user their history'],
    basis: 'contract (Art. 6(1)(b) GDPR)',
    retentionDays: null,
    retentionRule: "per the organisation's chatRetentionDays for business workspaces (a message that many days after it was written, a conversation that many days after its last one), otherwise until the user deletes it; crypto-shredded on erasure",
    processors: ['Microsoft Ireland (Azure OpenAI: EU regions; a Global deployment only when the user allows models outside the EU)', 'OpenAI Ireland (its EU data-residency endpoint; its models outside the EU only when the user allows them)', 'Hetzner Online GmbH (hosting, EU)'],
  },
  {
    service: 'chat',
    category: 'policy-replica',
    description: "Each user's restrictToEu setting and memberships, and organisations' chat policies, copied from identity",
    purposes: ['enforcing data residency and organisation policy'],
    basis: 'contract (Art. 6(1)(b) GDPR)',
    retentionDays: null,
    retentionRule: 'mirrors identity; deleted with the account',
    processors: ['Hetzner Online GmbH (hosting, EU)'],
  },
];
