import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Customers and subscriptions keyed by Stripe's ids: an erasure renames a
 * private workspace's rows to its owner's pseudonym (`erased-…`), and one who
 * subscribes again and is erased again has several there. A workspace in use
 * still has one of each.
 */
export class ErasedContractKeys1766200000000 implements MigrationInterface {
  name = 'ErasedContractKeys1766200000000';

  async up(q: QueryRunner): Promise<void> {
    for (const [table, id] of [['customers', 'stripe_customer_id'], ['subscriptions', 'stripe_subscription_id']]) {
      await q.query(`ALTER TABLE ${table} DROP CONSTRAINT ${table}_pkey, DROP CONSTRAINT ${table}_${id}_key, ADD PRIMARY KEY (${id})`);
      await q.query(`CREATE UNIQUE INDEX ${table}_workspace_key ON ${table} (workspace) WHERE workspace NOT LIKE 'erased-%'`);
    }
  }

  async down(q: QueryRunner): Promise<void> {
    for (const [table, id] of [['customers', 'stripe_customer_id'], ['subscriptions', 'stripe_subscription_id']]) {
      await q.query(`DROP INDEX ${table}_workspace_key`);
      await q.query(`ALTER TABLE ${table} DROP CONSTRAINT ${table}_pkey, ADD PRIMARY KEY (workspace), ADD UNIQUE (${id})`);
    }
  }
}
