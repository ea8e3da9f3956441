import type { Provider } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { retentionCondition } from '@ally/persistence';
import { BEFORE_RETENTION, type BeforeRetention } from '@ally/platform';
import { BILLING_CATEGORY_RULES } from '../category-retention.rules.js';
import { StripeClient } from '../stripe/stripe.client.js';

/** Customers read at a time; each is deleted at Stripe, then its row, one by one. */
const BATCH = 100;

/**
 * Before a real retention run deletes contract records, the Stripe customers
 * they name are deleted at Stripe: the row is the only reference to the
 * customer, so after it goes nothing could (an erasure finds customers
 * through it too). Each customer's row goes right after Stripe confirmed, so
 * what is done stays done; in at most half of the slice's time (the other
 * categories get the rest). Out of time, `contract` is unfinished: the pass
 * leaves its rows for privacy's next slice, which goes on from there.
 */
export const stripeCustomerRetention: Provider = {
  provide: BEFORE_RETENTION,
  inject: [DataSource, StripeClient],
  useFactory: (ds: DataSource, stripe: StripeClient): BeforeRetention => async (input) => {
    const contract = input.categories.find((c) => c.category === 'contract');
    const rule = BILLING_CATEGORY_RULES.find((r) => r.category === 'contract' && r.table === 'customers')!;
    const condition = contract && retentionCondition(rule, contract.retentionDays, input.heldUserIds, input.asOf, input.heldScopes);
    if (!condition) return;
    const stopBy = input.stopBy ? Date.now() + (Date.parse(input.stopBy) - Date.now()) / 2 : Infinity;
    const id = `$${condition.params.length + 1}`;
    let deleted = 0;
    for (;;) {
      const going: { stripe_customer_id: string }[] = await ds.query(
        `SELECT stripe_customer_id FROM customers WHERE ${condition.where} ORDER BY created_at, stripe_customer_id LIMIT ${BATCH}`,
        condition.params,
      );
      const before = deleted;
      for (const c of going) {
        if (Date.now() >= stopBy) return { affected: { contract: deleted }, unfinished: ['contract'] };
        await stripe.deleteCustomer(c.stripe_customer_id);
        const [, n] = await ds.query(`DELETE FROM customers WHERE ${condition.where} AND stripe_customer_id = ${id}`, [...condition.params, c.stripe_customer_id]);
        deleted += Number(n) || 0;
      }
      if (going.length < BATCH) return { affected: { contract: deleted }, unfinished: [] };
      // Rows that matched and would not go (taken by an erasure meanwhile): the next slice reads them anew.
      if (deleted === before) return { affected: { contract: deleted }, unfinished: ['contract'] };
    }
  },
};
