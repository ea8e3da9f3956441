import type { DataCategory } from '../common/data-categories.js';
import { billingDataCategories } from '../billing/billing.data-categories.js';
import { chatDataCategories } from '../chat/chat.data-categories.js';
import { identityDataCategories } from '../identity/identity.data-categories.js';
import { notifyDataCategories } from '../notify/notify.data-categories.js';
import { privacyDataCategories } from './privacy.data-categories.js';

export type DataHoldingService = DataCategory['service'];

/** Every data category every service declares: the source of the register, the retention plan and the saga steps. */
export const allDataCategories: readonly DataCategory[] = [
  ...identityDataCategories,
  ...chatDataCategories,
  ...billingDataCategories,
  ...notifyDataCategories,
  ...privacyDataCategories,
];

/**
 * The services a data-subject request has a step for: every service that
 * declares a category, except privacy (the saga does its own part). Identity
 * comes last: its erasure ends the account, so every other step must be done.
 */
export function personalDataServices(categories: readonly DataCategory[] = allDataCategories): DataHoldingService[] {
  const services = [...new Set(categories.map((c) => c.service))].filter((s) => s !== 'privacy');
  return services.sort((a, b) => Number(a === 'identity') - Number(b === 'identity'));
}

export const categoriesOf = (service: string, categories: readonly DataCategory[] = allDataCategories): DataCategory[] =>
  categories.filter((c) => c.service === service);

export const findCategory = (service: string, category: string, categories: readonly DataCategory[] = allDataCategories): DataCategory | undefined =>
  categories.find((c) => c.service === service && c.category === category);

/**
 * Categories without a default period whose service still deletes by age once
 * compliance sets one: revoked API keys, and chat history (beyond each
 * organisation's own chatRetentionDays).
 */
const PERIOD_WITHOUT_DEFAULT: ReadonlySet<string> = new Set(['identity/api-keys', 'chat/chat-history']);

/**
 * Whether a retention period in days applies to the category. One kept while
 * something else exists ("while the account exists") has no age at which it
 * is deleted: a day count there would mean nothing, or delete live data.
 */
export const takesRetentionDays = (c: DataCategory): boolean => c.retentionDays !== null || PERIOD_WITHOUT_DEFAULT.has(`${c.service}/${c.category}`);
