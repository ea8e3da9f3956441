import { describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { BillingRpc, privacyRpcs } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { billingWorld } from './billing-world.js';

/**
 * Between billing's erasure step and identity deleting the account, the
 * subject can still sign in: billing sets up nothing new for them then (a
 * Checkout left a customer, here and at Stripe, behind the erasure).
 */
describe('billing for a subject it erased', () => {
  const world = billingWorld();

  it('refuses Checkout and the portal with 410 and creates no customer', async () => {
    const rpc = new RpcClient(await world.env.nats(), world.env.prefix);
    await rpc.connect();
    try {
      const actor = { userId: randomUUID(), platformRoles: [] as [] };
      await rpc.call(privacyRpcs('billing').erase, { userId: actor.userId, scope: 'all' });
      await expect(rpc.call(BillingRpc.checkout, { workspace: 'private', plan: 'team' }, { actor })).rejects.toMatchObject({ status: 410 });
      await expect(rpc.call(BillingRpc.portal, { workspace: 'private' }, { actor })).rejects.toMatchObject({ status: 410 });
      expect(await world.env.sql(`SELECT 1 FROM billing.customers WHERE workspace = $1`, [`private:${actor.userId}`])).toEqual([]);
      expect(await world.env.sql(`SELECT alias FROM billing.erased_subjects`)).toEqual([{ alias: expect.stringMatching(/^erased-[0-9a-f]{16}$/) }]);

      // A private-only erasure leaves the account in use: the user may subscribe again.
      const other = { userId: randomUUID(), platformRoles: [] as [] };
      await rpc.call(privacyRpcs('billing').erase, { userId: other.userId, scope: 'private' });
      expect(await rpc.call(BillingRpc.checkout, { workspace: 'private', plan: 'team' }, { actor: other })).toMatchObject({ url: expect.any(String) });
    } finally {
      await rpc.close();
    }
  });
});
