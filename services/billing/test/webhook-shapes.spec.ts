import { afterEach, describe, expect, it, jest } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import Stripe from 'stripe';
import { ProblemError } from '@ally/contracts';
import { billingWorld } from './billing-world.js';

/**
 * Signed webhooks of an unexpected shape. A body that is not a Stripe event,
 * or whose data.object is not what its type needs, is a 400 naming the field
 * (and not recorded, so a fixed delivery is applied); a well-formed event about
 * something billing does not know is acknowledged, logged and recorded: never
 * a 500, which Stripe would retry for days.
 */
describe('Stripe webhooks of an unexpected shape', () => {
  const world = billingWorld();

  afterEach(() => {
    jest.restoreAllMocks();
  });

  const eventId = () => `evt_${randomUUID().replace(/-/g, '')}`;
  const send = (body: unknown) => world.sendWebhook(body);
  const event = (type: string, object: object, extra: object = {}) => ({
    id: eventId(),
    object: 'event',
    type,
    created: Math.floor(Date.now() / 1000),
    data: { object },
    api_version: world.stripe.apiVersion,
    livemode: false,
    ...extra,
  });
  const problem = async (delivery: Promise<unknown>) => {
    const err = await delivery.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ProblemError);
    return err as ProblemError;
  };
  const processed = async (id: string) => (await world.env.sql(`SELECT 1 FROM billing.processed_webhooks WHERE event_id = $1`, [id])).length === 1;
  const processedCount = async () => (await world.env.sql<{ n: number }>(`SELECT count(*)::int AS n FROM billing.processed_webhooks`))[0].n;
  const subscriptionOf = async (workspace: string) => (await world.env.sql(`SELECT stripe_subscription_id, plan, status FROM billing.subscriptions WHERE workspace = $1`, [workspace]))[0];
  const warnings = () => jest.spyOn(world.billing.ctx.logger, 'warn');
  const warned = (spy: ReturnType<typeof warnings>, message: RegExp) => spy.mock.calls.some((args) => args.some((a) => typeof a === 'string' && message.test(a)));
  /** A workspace with its Stripe customer, as Checkout leaves it. */
  const workspaceWithCustomer = async () => {
    const workspace = randomUUID();
    const customer = await world.sdk.customers.create({ metadata: { workspace } });
    await world.env.sql(`INSERT INTO billing.customers (workspace, stripe_customer_id, created_by) VALUES ($1, $2, $3)`, [workspace, customer.id, randomUUID()]);
    return { workspace, customer: customer.id };
  };

  it.each([
    ['an array', [], '(body)'],
    ['a checkout.session.completed without data.object', { id: 'evt_x2', type: 'checkout.session.completed', data: {} }, 'data.object'],
    ['an event without an id', { object: 'event', type: 'invoice.paid', created: 1, data: { object: {} } }, 'id'],
    ['an event without a type', { id: eventId(), object: 'event', created: 1, data: { object: {} } }, 'type'],
    ['an id Postgres cannot store', { id: 'evt_\u0000', object: 'event', type: 'customer.created', created: 1, data: { object: {} } }, 'id'],
    ['a subscription without a customer', { id: eventId(), type: 'customer.subscription.updated', created: 1, data: { object: { id: 'sub_nocustomer', object: 'subscription', status: 'active' } } }, 'data.object.customer'],
    ['a subscription whose items are not a list', { id: eventId(), type: 'customer.subscription.created', created: 1, data: { object: { id: 'sub_items', customer: 'cus_x', status: 'active', items: { data: 'many' } } } }, 'data.object.items.data'],
    ['an invoice without a currency', { id: eventId(), type: 'invoice.paid', created: 1, data: { object: { id: 'in_x', customer: 'cus_x', created: 1 } } }, 'data.object.currency'],
    ['a checkout session with a numeric workspace', { id: eventId(), type: 'checkout.session.completed', created: 1, data: { object: { id: 'cs_x', client_reference_id: 42, customer: 'cus_x' } } }, 'data.object.client_reference_id'],
  ])('answers %s with a 400 naming what is wrong, and does not record it', async (_, body, field) => {
    const before = await processedCount();
    const err = await problem(send(body));
    expect(err.status).toBe(400);
    expect(err.message).toMatch(/^Invalid Stripe event: /);
    expect(err.toProblem().errors?.map((e) => e.field)).toContain(field);
    expect(await processedCount()).toBe(before);
  });

  it('acknowledges an update of a subscription neither billing nor Stripe has, and records it', async () => {
    const { workspace, customer } = await workspaceWithCustomer();
    const warn = warnings();
    // As probed: no `created`, a sub_ nobody has, its metadata naming a real workspace.
    const body = { id: eventId(), type: 'customer.subscription.updated', data: { object: { id: 'sub_unknown1', object: 'subscription', customer, status: 'active', metadata: { workspace, plan: 'team' } } } };
    await expect(send(body)).resolves.toEqual({ received: true, duplicate: false });
    expect(warned(warn, /subscription neither billing nor Stripe has/)).toBe(true);
    expect(await processed(body.id)).toBe(true);
    expect(await subscriptionOf(workspace)).toBeUndefined();
    await expect(send(body)).resolves.toEqual({ received: true, duplicate: true });
  });

  it('acknowledges a subscription whose customer belongs to no workspace', async () => {
    const stranger = await world.sdk.customers.create({ name: 'Unbekannt GmbH' });
    const claimed = randomUUID();
    const sub = await world.sdk.subscriptions.create({ customer: stranger.id, items: [{ price: 'price_team_monthly', quantity: 1 }], metadata: { workspace: claimed, plan: 'team' } });
    const warn = warnings();
    const body = event('customer.subscription.updated', sub);
    await expect(send(body)).resolves.toEqual({ received: true, duplicate: false });
    expect(warned(warn, /customer of no workspace/)).toBe(true);
    expect(await processed(body.id)).toBe(true);
    expect(await subscriptionOf(claimed)).toBeUndefined();
  });

  it("acknowledges a deleted subscription whose customer is not the workspace's it names, and leaves both workspaces alone", async () => {
    const mine = await workspaceWithCustomer();
    const other = await workspaceWithCustomer();
    // The other workspace's customer, with a subscription whose metadata names mine.
    const sub = await world.sdk.subscriptions.create({ customer: other.customer, items: [{ price: 'price_team_monthly', quantity: 1 }], metadata: { workspace: mine.workspace, plan: 'team' } });
    const canceled = await world.sdk.subscriptions.cancel(sub.id);
    const warn = warnings();
    const body = event('customer.subscription.deleted', canceled);
    await expect(send(body)).resolves.toEqual({ received: true, duplicate: false });
    expect(warned(warn, /customer is not its workspace's/)).toBe(true);
    expect(await processed(body.id)).toBe(true);
    expect(await subscriptionOf(mine.workspace)).toBeUndefined();
    expect(await subscriptionOf(other.workspace)).toBeUndefined();
  });

  it('acknowledges a completed checkout naming no workspace billing could have opened it for, and records no customer', async () => {
    const org = randomUUID();
    // Bad names; and a valid organisation named only in client_reference_id (a Payment Link's URL takes any), or
    // there and in the metadata differently: billing opened none of them.
    const sessions = [
      ...['private', 'erased-0123456789abcdef', 'Private:' + randomUUID()].map((name) => ({ client_reference_id: name, metadata: { workspace: name } })),
      { client_reference_id: org },
      { client_reference_id: org, metadata: { workspace: randomUUID() } },
    ];
    for (const [i, named] of sessions.entries()) {
      const warn = warnings();
      const body = event('checkout.session.completed', { id: `cs_forged${i}`, object: 'checkout.session', ...named, customer: `cus_forged${i}` });
      await expect(send(body)).resolves.toEqual({ received: true, duplicate: false });
      expect(warned(warn, /without a workspace or a customer/)).toBe(true);
      expect(await world.env.sql(`SELECT workspace FROM billing.customers WHERE stripe_customer_id = $1`, [`cus_forged${i}`])).toEqual([]);
    }
  });

  it('acknowledges an invoice of a customer of no workspace', async () => {
    const stranger = await world.sdk.customers.create({ name: 'Niemand AG' });
    const warn = warnings();
    const body = event('invoice.paid', { id: 'in_nobody1', object: 'invoice', customer: stranger.id, currency: 'eur', status: 'paid', total: 100, subtotal: 100, amount_paid: 100, created: Math.floor(Date.now() / 1000) });
    await expect(send(body)).resolves.toEqual({ received: true, duplicate: false });
    expect(warned(warn, /customer of no workspace/)).toBe(true);
    expect(await world.env.sql(`SELECT 1 FROM billing.invoices WHERE stripe_invoice_id = 'in_nobody1'`)).toEqual([]);
  });

  it('still applies a valid event once, and refuses one that would change state without its time', async () => {
    const { workspace, customer } = await workspaceWithCustomer();
    const sub = await world.sdk.subscriptions.create({ customer, items: [{ price: 'price_team_monthly', quantity: 1 }], metadata: { workspace, plan: 'team' } });

    const timeless = { ...event('customer.subscription.created', sub), created: undefined };
    const err = await problem(send(timeless));
    expect(err.status).toBe(400);
    expect(err.toProblem().errors?.map((e) => e.field)).toEqual(['created']);
    expect(await processed(timeless.id)).toBe(false);
    expect(await subscriptionOf(workspace)).toBeUndefined();

    const body = event('customer.subscription.created', sub);
    await expect(send(body)).resolves.toEqual({ received: true, duplicate: false });
    expect(await subscriptionOf(workspace)).toEqual({ stripe_subscription_id: sub.id, plan: 'team', status: 'active' });
    const changed = await world.env.sql(`SELECT 1 FROM billing.outbox WHERE type = 'billing.subscription.changed' AND payload::text LIKE $1`, [`%${workspace}%`]);
    expect(changed).toHaveLength(1);
    await expect(send(body)).resolves.toEqual({ received: true, duplicate: true });
    expect(await world.env.sql(`SELECT 1 FROM billing.outbox WHERE type = 'billing.subscription.changed' AND payload::text LIKE $1`, [`%${workspace}%`])).toHaveLength(1);
  });

  it("takes the seats from the item priced as a plan, whatever the subscription's other items", async () => {
    const { workspace, customer } = await workspaceWithCustomer();
    // An add-on an operator put on the subscription in Stripe's dashboard comes first.
    const sub = await world.sdk.subscriptions.create({
      customer,
      items: [{ price: 'price_priority_support', quantity: 1 }, { price: 'price_team_monthly', quantity: 4 }],
      metadata: { workspace },
    });
    await expect(send(event('customer.subscription.created', sub))).resolves.toEqual({ received: true, duplicate: false });
    const seatItem = sub.items.data.find((i) => i.price.id === 'price_team_monthly')!;
    expect((await world.env.sql(`SELECT plan, seats, stripe_item_id FROM billing.subscriptions WHERE workspace = $1`, [workspace]))[0]).toEqual({ plan: 'team', seats: 4, stripe_item_id: seatItem.id });
  });
});
