import type { CategoryRetentionRule } from '@ally/persistence';

/** The user a private workspace's rows belong to (`private:<id>`); an organisation's belong to no one person. */
const PRIVATE_WORKSPACE_USER = `CASE WHEN workspace LIKE 'private:%' THEN substr(workspace, ${'private:'.length + 1}) END`;
/** The only workspace whose contract rows name a user (above): a restriction of an organisation leaves them to their period. */
const PRIVATE = `'private'`;

/**
 * Contract data 4 years after it ended (the subscription, then the customer
 * record once no subscription is left; one that never subscribed 4 years
 * after it was made), the ledger 4 years from the end of its month, invoices 10 years from the end of
 * their calendar year (periods from
 * privacy's policy); a held user's rows stay, and those of a user who
 * restricted their private workspace or the whole account (contract and
 * invoices name a user only in a private workspace).
 */
export const BILLING_CATEGORY_RULES: CategoryRetentionRule[] = [
  { category: 'contract', table: 'subscriptions', key: 'stripe_subscription_id', since: 'ended_at', where: 'ended_at IS NOT NULL', userColumn: PRIVATE_WORKSPACE_USER, workspace: PRIVATE },
  // The customer goes with its ended subscription (a dry run counts both), or 4 years after it was made if it never subscribed.
  // An erased subject's pseudonym may hold several of each: its customers wait for the last subscription there to end.
  {
    category: 'contract',
    table: 'customers',
    key: 'stripe_customer_id',
    since: 'coalesce((SELECT max(s.ended_at) FROM subscriptions s WHERE s.workspace = customers.workspace), customers.created_at)',
    where: 'NOT EXISTS (SELECT 1 FROM subscriptions s WHERE s.workspace = customers.workspace AND s.ended_at IS NULL)',
    userColumn: PRIVATE_WORKSPACE_USER,
    workspace: PRIVATE,
  },
  // A member restricted in one workspace keeps only that workspace's usage.
  // Its period is counted from the end of the billing month the usage belongs to (`period`, a UTC month as quotas count it).
  {
    category: 'usage-ledger',
    table: 'ledger',
    key: 'message_id',
    since: `(((period || '-01')::date + interval '1 month') AT TIME ZONE 'UTC')`,
    where: "meter_status <> 'pending'",
    userColumn: 'user_id',
    workspace: `CASE WHEN workspace LIKE 'private:%' THEN 'private' ELSE workspace END`,
  },
  // The period the law sets starts when the invoice's calendar year ends (§ 147 (4) AO, § 257 (5) HGB), in German
  // time; its year is that of its finalisation, as the books date it (a renewal drafted on New Year's Eve is the new year's).
  {
    category: 'invoices',
    table: 'invoices',
    key: 'stripe_invoice_id',
    since: `(date_trunc('year', coalesce(finalized_at, created_at) AT TIME ZONE 'Europe/Berlin') + interval '1 year') AT TIME ZONE 'Europe/Berlin'`,
    userColumn: PRIVATE_WORKSPACE_USER,
    workspace: PRIVATE,
  },
];
