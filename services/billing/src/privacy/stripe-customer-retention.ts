import type { Provider } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { retentionCondition } from '@ally/persistence';
import { BEFORE_RETENTION, type BeforeRetention } from '@ally/platform';
import { BILLING_CATEGORY_RULES } from '../category-retention.rules.js';
import { StripeClient } from '../stripe/stripe.client.js';

/**
 * Before a real retention run deletes contract records, the Stripe customers
 * they name are deleted at Stripe: the row is the only reference to the
 * customer, so after it goes nothing could (an erasure finds customers
 * through it too). The pass takes the same rows (one `asOf` for both). A
 * failure, or running out of time, fails billing's part of the run and keeps
 * the rows for the next one.
 */
export const stripeCustomerRetention: Provider = {
  provide: BEFORE_RETENTION,
  inject: [DataSource, StripeClient],
  useFactory: (ds: DataSource, stripe: StripeClient): BeforeRetention => async (input) => {
    const contract = input.categories.find((c) => c.category === 'contract');
    const rule = BILLING_CATEGORY_RULES.find((r) => r.category === 'contract' && r.table === 'customers')!;
    const condition = contract && retentionCondition(rule, contract.retentionDays, input.heldUserIds, input.asOf, input.heldScopes);
    if (!condition) return;
    const going: { stripe_customer_id: string }[] = await ds.query(`SELECT stripe_customer_id FROM customers WHERE ${condition.where}`, condition.params);
    const stopBy = input.stopBy ? Date.parse(input.stopBy) : Infinity;
    for (const c of going) {
      // Out of time: no row goes this run (the pass would take those not yet deleted at Stripe); the next run goes on.
      if (Date.now() >= stopBy) throw new Error(`stopped at the time limit after deleting customers at Stripe; the contract records wait for the next run`);
      await stripe.deleteCustomer(c.stripe_customer_id);
    }
  },
};
