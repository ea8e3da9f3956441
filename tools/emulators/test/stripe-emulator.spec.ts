import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import Stripe from 'stripe';
import { parseStripeForm, signStripePayload, startStripeEmulator, type StripeEmulator } from '@ally/emulators';

// The real `stripe` SDK against the emulator: what works here works against Stripe.
interface Received {
  raw: string;
  signature: string;
  event?: Stripe.Event;
  error?: string;
}

describe('Stripe emulator', () => {
  let emulator: StripeEmulator;
  let receiver: Server;
  let receiverUrl: string;
  const received: Received[] = [];
  let receiverStatus = 200;

  const stripe = (extra: Record<string, unknown> = {}, key = 'sk_test_ally_123') => new Stripe(key, { ...emulator.sdkOptions, maxNetworkRetries: 0, ...extra });

  beforeAll(async () => {
    // A tiny webhook endpoint that verifies signatures with the SDK, as the billing service will.
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        const signature = String(req.headers['stripe-signature'] ?? '');
        const entry: Received = { raw, signature };
        try {
          entry.event = stripe().webhooks.constructEvent(raw, signature, emulator.webhookSecret);
        } catch (err) {
          entry.error = (err as Error).message;
        }
        received.push(entry);
        res.writeHead(entry.error ? 400 : receiverStatus).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    receiverUrl = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/webhooks/stripe`;
    emulator = await startStripeEmulator({
      webhookUrl: receiverUrl,
      taxPercent: 19,
      meters: [{ id: 'mtr_test_tokens', event_name: 'ally_tokens', display_name: 'Ally tokens' }],
      prices: [
        { id: 'price_pro_monthly', unit_amount: 2900, currency: 'eur', interval: 'month', product_name: 'Ally Pro' },
        { id: 'price_team_monthly', unit_amount: 9900, currency: 'eur', interval: 'month', product_name: 'Ally Team' },
        { id: 'price_tokens', unit_amount: 2, currency: 'eur', interval: 'month', usage_type: 'metered', meter: 'mtr_test_tokens', product_name: 'Tokens' },
      ],
    });
  });
  afterAll(async () => {
    await emulator.close();
    await new Promise<void>((resolve) => receiver.close(() => resolve()));
  });
  beforeEach(async () => {
    await emulator.flushWebhooks();
    emulator.reset();
    received.length = 0;
    receiverStatus = 200;
  });

  async function subscribe(opts: { quantity?: number; metered?: boolean } = {}) {
    const client = stripe();
    const customer = await client.customers.create({ email: 'ada@example.com', metadata: { org_id: 'org_1' } });
    const session = await client.checkout.sessions.create({
      mode: 'subscription',
      customer: customer.id,
      client_reference_id: 'org_1',
      line_items: [{ price: 'price_pro_monthly', quantity: opts.quantity ?? 3 }, ...(opts.metered ? [{ price: 'price_tokens' }] : [])],
      metadata: { org_id: 'org_1' },
      subscription_data: { metadata: { org_id: 'org_1', plan: 'pro' } },
      success_url: 'https://app.example/billing/success?session_id={CHECKOUT_SESSION_ID}',
      cancel_url: 'https://app.example/billing',
    });
    const done = emulator.completeCheckout(session.id);
    return { client, customer, session, subscription: done.subscription!, invoice: done.invoice! };
  }

  describe('wire format', () => {
    it('parses nested keys and indexed arrays like Stripe, keeping metadata keys as given', () => {
      expect(parseStripeForm('line_items[0][price]=p1&line_items[0][quantity]=2&line_items[1][price]=p2&metadata[0]=zero&metadata[plan%20name]=pro%2Bplus&expand[]=customer&expand[]=subscription&subscription_data[metadata][k]=v+w')).toEqual({
        line_items: [{ price: 'p1', quantity: '2' }, { price: 'p2' }],
        metadata: { 0: 'zero', 'plan name': 'pro+plus' },
        expand: ['customer', 'subscription'],
        subscription_data: { metadata: { k: 'v w' } },
      });
    });

    it('refuses a missing or non-test key with 401, like Stripe', async () => {
      await expect(stripe({}, 'sk_live_nope_1234567890').customers.create({})).rejects.toMatchObject({ type: 'StripeAuthenticationError', statusCode: 401 });
      const res = await fetch(`${emulator.url}/v1/customers`, { method: 'POST' });
      expect(res.status).toBe(401);
      expect(((await res.json()) as { error: unknown }).error).toMatchObject({ type: 'invalid_request_error', message: expect.stringContaining('did not provide an API key') });
    });

    it('answers unknown resources with a Stripe-shaped 404', async () => {
      const err = await stripe().customers.retrieve('cus_missing').catch((e) => e);
      expect(err).toMatchObject({ type: 'StripeInvalidRequestError', statusCode: 404, code: 'resource_missing', param: 'id', message: "No such customer: 'cus_missing'" });
      expect(err.requestId).toMatch(/^req_/);
    });
  });

  describe('customers', () => {
    it('creates, retrieves and updates metadata (an empty value removes a key), with customer.updated carrying previous_attributes', async () => {
      const client = stripe();
      const created = await client.customers.create({ email: 'ada@example.com', name: 'Ada', metadata: { org_id: 'org_1', tier: 'free' } });
      expect(created).toMatchObject({ object: 'customer', email: 'ada@example.com', metadata: { org_id: 'org_1', tier: 'free' }, livemode: false });
      expect(created.id).toMatch(/^cus_/);
      expect(Math.abs(created.created - emulator.now())).toBeLessThanOrEqual(1);

      const updated = await client.customers.update(created.id, { metadata: { tier: '', plan: 'pro' } });
      expect(updated.metadata).toEqual({ org_id: 'org_1', plan: 'pro' });
      expect((await client.customers.retrieve(created.id)) as Stripe.Customer).toMatchObject({ metadata: { org_id: 'org_1', plan: 'pro' } });

      const [event] = emulator.events({ type: 'customer.updated' });
      expect(event.data.previous_attributes).toEqual({ metadata: { org_id: 'org_1', tier: 'free' } });
      const found = await client.customers.search({ query: "metadata['org_id']:'org_1'" });
      expect(found.data.map((c) => c.id)).toEqual([created.id]);
    });
  });

  describe('checkout', () => {
    it("saves the name and address Checkout collected onto an existing customer where customer_update allows it, and refuses what Stripe refuses", async () => {
      const client = stripe();
      const customer = await client.customers.create({ metadata: { workspace: 'org_2' } });
      const base = { mode: 'subscription' as const, line_items: [{ price: 'price_pro_monthly', quantity: 1 }], success_url: 'https://app.example/ok' };
      await expect(client.checkout.sessions.create({ ...base, customer_update: { name: 'auto' } })).rejects.toMatchObject({ statusCode: 400, param: 'customer_update' });
      const session = await client.checkout.sessions.create({
        ...base,
        customer: customer.id,
        billing_address_collection: 'required',
        tax_id_collection: { enabled: true },
        customer_update: { name: 'auto', address: 'auto' },
        automatic_tax: { enabled: true },
      });
      expect(session).toMatchObject({ billing_address_collection: 'required', tax_id_collection: { enabled: true }, automatic_tax: { enabled: true } });
      emulator.completeCheckout(session.id, { name: 'Nordlicht GmbH', address: { line1: 'Hafenstraße 5', postal_code: '20457', city: 'Hamburg', country: 'DE' }, taxId: { type: 'eu_vat', value: 'DE123456789' } });
      expect(await client.customers.retrieve(customer.id)).toMatchObject({
        name: 'Nordlicht GmbH',
        address: { line1: 'Hafenstraße 5', line2: null, postal_code: '20457', city: 'Hamburg', state: null, country: 'DE' },
      });
      // Its tax IDs only when asked for, as Stripe answers.
      expect(await client.customers.retrieve(customer.id)).not.toHaveProperty('tax_ids');
      expect(await client.customers.retrieve(customer.id, { expand: ['tax_ids'] })).toMatchObject({ tax_ids: { object: 'list', data: [{ type: 'eu_vat', value: 'DE123456789', country: 'DE' }] } });
    });

    it('creates an open session whose url points at the emulator', async () => {
      const session = await stripe().checkout.sessions.create({
        mode: 'subscription',
        line_items: [{ price: 'price_pro_monthly', quantity: 2 }],
        success_url: 'https://app.example/ok',
        cancel_url: 'https://app.example/no',
      });
      expect(session.id).toMatch(/^cs_test_/);
      expect(session).toMatchObject({ object: 'checkout.session', status: 'open', mode: 'subscription', payment_status: 'unpaid', amount_total: 5800, currency: 'eur' });
      expect(session.url).toBe(`${emulator.url}/checkout/${session.id}`);
      const page = await fetch(session.url!);
      expect(await page.text()).toContain('Pay');
    });

    it('refuses an unknown price (prices were configured) and a metered price with a quantity', async () => {
      await expect(stripe().checkout.sessions.create({ mode: 'subscription', line_items: [{ price: 'price_nope', quantity: 1 }] })).rejects.toMatchObject({
        statusCode: 400,
        code: 'resource_missing',
        param: 'line_items[0][price]',
      });
      await expect(stripe().checkout.sessions.create({ mode: 'subscription', line_items: [{ price: 'price_tokens', quantity: 1 }] })).rejects.toMatchObject({
        statusCode: 400,
        param: 'line_items[0][quantity]',
      });
    });

    it('completion creates the subscription and its paid first invoice, and emits signed webhooks in order', async () => {
      const client = stripe();
      const customer = await client.customers.create({ email: 'ada@example.com' });
      const session = await client.checkout.sessions.create({
        mode: 'subscription',
        customer: customer.id,
        client_reference_id: 'org_1',
        line_items: [{ price: 'price_pro_monthly', quantity: 3 }],
        metadata: { org_id: 'org_1' },
        subscription_data: { metadata: { org_id: 'org_1', plan: 'pro' } },
        success_url: 'https://app.example/ok?session_id={CHECKOUT_SESSION_ID}',
        cancel_url: 'https://app.example/no',
      });
      const t0 = emulator.now();

      const res = await fetch(`${emulator.url}/__emulator/checkout/${session.id}/complete`, { method: 'POST' });
      expect(res.status).toBe(200);
      await emulator.flushWebhooks();

      const done = await client.checkout.sessions.retrieve(session.id, { expand: ['subscription'] });
      expect(done).toMatchObject({ status: 'complete', payment_status: 'paid', customer: customer.id, client_reference_id: 'org_1', metadata: { org_id: 'org_1' } });
      const sub = done.subscription as Stripe.Subscription;
      expect(sub.id).toMatch(/^sub_/);
      expect(sub).toMatchObject({ status: 'active', customer: customer.id, metadata: { org_id: 'org_1', plan: 'pro' }, cancel_at_period_end: false, currency: 'eur' });
      expect(sub.items.data).toHaveLength(1);
      const item = sub.items.data[0];
      expect(item).toMatchObject({ object: 'subscription_item', quantity: 3, price: { id: 'price_pro_monthly', unit_amount: 2900 } });
      expect(item.current_period_start).toBeGreaterThanOrEqual(t0);
      const start = new Date(item.current_period_start * 1000);
      const end = new Date(item.current_period_end * 1000);
      expect((end.getUTCFullYear() - start.getUTCFullYear()) * 12 + end.getUTCMonth() - start.getUTCMonth()).toBe(1);
      // Legacy top-level period fields are mirrored for services that still read them.
      expect(sub).toMatchObject({ current_period_start: item.current_period_start, current_period_end: item.current_period_end });

      const invoice = await client.invoices.retrieve(sub.latest_invoice as string);
      expect(invoice).toMatchObject({
        status: 'paid',
        billing_reason: 'subscription_create',
        customer: customer.id,
        currency: 'eur',
        subtotal: 8700,
        total_excluding_tax: 8700,
        total_taxes: [expect.objectContaining({ amount: 1653, taxable_amount: 8700, tax_behavior: 'exclusive' })],
        total: 10353,
        amount_due: 10353,
        amount_paid: 10353,
        subscription: sub.id,
        parent: { type: 'subscription_details', subscription_details: { subscription: sub.id, metadata: { org_id: 'org_1', plan: 'pro' } } },
      });
      expect(invoice.number).toMatch(/^[A-Z0-9]{8}-0001$/);
      // As Stripe since 2025-03-31.basil: no legacy `tax`.
      expect(invoice).not.toHaveProperty('tax');
      expect(invoice.hosted_invoice_url).toBe(`${emulator.url}/invoice/${invoice.id}`);
      expect(invoice.lines.data[0]).toMatchObject({ amount: 8700, quantity: 3, period: { start: item.current_period_start, end: item.current_period_end } });

      const types = emulator.events().map((e) => e.type);
      expect(types).toEqual([
        'customer.created',
        'checkout.session.completed',
        'customer.subscription.created',
        'invoice.created',
        'invoice.finalized',
        'invoice.paid',
        'invoice.payment_succeeded',
      ]);
      // Every webhook verified with the SDK's constructEvent, arrived in emission order, and was answered 200.
      expect(received.map((r) => r.error)).toEqual(types.map(() => undefined));
      expect(received.map((r) => r.event!.type)).toEqual(types);
      expect(received.map((r) => r.event!.id)).toEqual(emulator.events().map((e) => e.id));
      expect(emulator.deliveries().map((d) => d.status)).toEqual(types.map(() => 200));
      const completed = received[1].event as Stripe.CheckoutSessionCompletedEvent;
      expect(completed.data.object).toMatchObject({ id: session.id, subscription: sub.id, client_reference_id: 'org_1' });
      expect(completed.created).toBeGreaterThanOrEqual(t0);
      expect(completed.api_version).toBe(Stripe.API_VERSION);
      // A tampered body is refused by the same check.
      expect(() => stripe().webhooks.constructEvent(received[1].raw.replace('org_1', 'org_2'), received[1].signature, emulator.webhookSecret)).toThrow(/signature/i);
    });

    it('the hosted page pays and redirects to success_url with the session id', async () => {
      const { id } = await stripe().checkout.sessions.create({ mode: 'subscription', line_items: [{ price: 'price_pro_monthly', quantity: 1 }], success_url: 'https://app.example/ok?s={CHECKOUT_SESSION_ID}' });
      const res = await fetch(`${emulator.url}/checkout/${id}/pay`, { method: 'POST', redirect: 'manual', body: new URLSearchParams({ email: 'bob@example.com' }) });
      expect(res.status).toBe(303);
      expect(res.headers.get('location')).toBe(`https://app.example/ok?s=${id}`);
      const session = await stripe().checkout.sessions.retrieve(id, { expand: ['customer'] });
      expect(session.status).toBe('complete');
      expect((session.customer as Stripe.Customer).email).toBe('bob@example.com');
    });

    it('the hosted page of an expired session takes no payment and says so', async () => {
      const { id } = await stripe().checkout.sessions.create({ mode: 'subscription', line_items: [{ price: 'price_pro_monthly', quantity: 1 }], success_url: 'https://app.example/ok?s={CHECKOUT_SESSION_ID}' });
      await stripe().checkout.sessions.expire(id);
      const res = await fetch(`${emulator.url}/checkout/${id}/pay`, { method: 'POST', redirect: 'manual', body: new URLSearchParams({ email: 'eve@example.com' }) });
      expect(res.status).toBe(410);
      expect(await res.text()).toContain('has expired');
      expect(await stripe().checkout.sessions.retrieve(id)).toMatchObject({ status: 'expired', payment_status: 'unpaid', subscription: null });
    });
  });

  describe('subscriptions', () => {
    it('updates the quantity (always_invoice bills the proration) and emits customer.subscription.updated with previous_attributes', async () => {
      const { client, subscription } = await subscribe({ quantity: 3 });
      await emulator.advanceTime(15 * 86_400);
      const before = emulator.events().length;

      const updated = await client.subscriptions.update(subscription.id, {
        items: [{ id: subscription.items.data[0].id, quantity: 5 }],
        proration_behavior: 'always_invoice',
      });
      expect(updated.items.data[0].quantity).toBe(5);
      await emulator.flushWebhooks();

      const events = emulator.events().slice(before);
      expect(events.map((e) => e.type)).toEqual(['customer.subscription.updated', 'invoice.created', 'invoice.finalized', 'invoice.paid', 'invoice.payment_succeeded']);
      expect(events[0].data.object.items.data[0].quantity).toBe(5);
      expect(events[0].data.previous_attributes.items.data[0].quantity).toBe(3);
      expect(events[0].request).toEqual({ id: expect.stringMatching(/^req_/), idempotency_key: expect.stringMatching(/^stripe-node-retry-/) });
      const proration = events[3].data.object;
      expect(proration).toMatchObject({ billing_reason: 'subscription_update', status: 'paid', subscription: subscription.id });
      expect(proration.subtotal).toBeGreaterThan(0);
      expect(proration.subtotal).toBeLessThan(2 * 2900);
      expect(proration.lines.data.map((l: { amount: number }) => Math.sign(l.amount))).toEqual([-1, 1]);
      expect(received.every((r) => !r.error)).toBe(true);
    });

    it('cancel_at_period_end, then cancel now: customer.subscription.updated then customer.subscription.deleted', async () => {
      const { client, subscription } = await subscribe();
      const before = emulator.events().length;

      const pending = await client.subscriptions.update(subscription.id, { cancel_at_period_end: true });
      expect(pending).toMatchObject({ cancel_at_period_end: true, cancel_at: subscription.items.data[0].current_period_end, status: 'active' });
      const canceled = await client.subscriptions.cancel(subscription.id, { cancellation_details: { comment: 'too expensive' } });
      expect(Math.abs(canceled.ended_at! - emulator.now())).toBeLessThanOrEqual(1);
      expect(canceled).toMatchObject({ status: 'canceled', cancellation_details: { comment: 'too expensive', reason: 'cancellation_requested' } });
      await emulator.flushWebhooks();

      const events = emulator.events().slice(before);
      expect(events.map((e) => e.type)).toEqual(['customer.subscription.updated', 'customer.subscription.deleted']);
      expect(events[0].data.previous_attributes).toMatchObject({ cancel_at_period_end: false, cancel_at: null });
      expect(events.every((e) => typeof e.created === 'number')).toBe(true);
      expect(received.slice(-2).map((r) => r.event!.type)).toEqual(['customer.subscription.updated', 'customer.subscription.deleted']);

      await expect(client.subscriptions.update(subscription.id, { items: [{ id: subscription.items.data[0].id, quantity: 1 }] })).rejects.toMatchObject({ statusCode: 400 });
    });

    it('renews on advanceTime: new period, a subscription_cycle invoice with the metered usage of the past period, and cancels at period end', async () => {
      const { client, customer, subscription } = await subscribe({ quantity: 1, metered: true });
      const periodEnd = subscription.items.data[0].current_period_end;
      await client.billing.meterEvents.create({ event_name: 'ally_tokens', payload: { stripe_customer_id: customer.id, value: '1200' } });
      await client.billing.meterEvents.create({ event_name: 'ally_tokens', payload: { stripe_customer_id: customer.id, value: '300' } });
      const before = emulator.events().length;

      const events = await emulator.advanceTime(periodEnd - emulator.now() + 60);
      expect(events.map((e) => e.type)).toEqual(['customer.subscription.updated', 'invoice.created', 'invoice.finalized', 'invoice.paid', 'invoice.payment_succeeded']);
      expect(emulator.events().length).toBe(before + 5);
      const renewed = await client.subscriptions.retrieve(subscription.id);
      expect(renewed.items.data[0].current_period_start).toBe(periodEnd);
      const invoice = await client.invoices.retrieve(renewed.latest_invoice as string);
      expect(invoice).toMatchObject({ billing_reason: 'subscription_cycle', status: 'paid', period_start: subscription.items.data[0].current_period_start, period_end: periodEnd, created: periodEnd });
      // 1 × 29.00 in advance + 1500 tokens × 0.02 in arrears.
      expect(invoice.subtotal).toBe(2900 + 3000);

      await client.subscriptions.update(subscription.id, { cancel_at_period_end: true });
      const later = await emulator.advanceTime(40 * 86_400);
      expect(later.map((e) => e.type)).toEqual(['customer.subscription.deleted']);
      expect((await client.subscriptions.retrieve(subscription.id)).status).toBe('canceled');
    });

    it('a declined renewal leaves the invoice open and the subscription past_due until it is paid', async () => {
      const { client, customer, subscription } = await subscribe();
      emulator.declinePayments(customer.id);
      const events = await emulator.advanceTime(32 * 86_400);
      expect(events.map((e) => e.type)).toEqual(['customer.subscription.updated', 'invoice.created', 'invoice.finalized', 'invoice.payment_failed', 'customer.subscription.updated']);
      expect((await client.subscriptions.retrieve(subscription.id)).status).toBe('past_due');

      emulator.declinePayments(customer.id, false);
      const invoice = await client.invoices.pay(events[3].data.object.id);
      expect(invoice.status).toBe('paid');
      expect((await client.subscriptions.retrieve(subscription.id)).status).toBe('active');
    });
  });

  describe('billing portal and invoices', () => {
    it('creates a portal session for a customer', async () => {
      const { client, customer } = await subscribe();
      const portal = await client.billingPortal.sessions.create({ customer: customer.id, return_url: 'https://app.example/billing' });
      expect(portal.id).toMatch(/^bps_/);
      expect(portal).toMatchObject({ object: 'billing_portal.session', customer: customer.id, return_url: 'https://app.example/billing', url: `${emulator.url}/billing_portal/${portal.id}` });
      expect(await (await fetch(portal.url)).text()).toContain('Cancel plan');
      await expect(client.billingPortal.sessions.create({ customer: 'cus_nope' })).rejects.toMatchObject({ statusCode: 400, code: 'resource_missing', param: 'customer' });
    });

    it('lists invoices by customer and by subscription, newest first, and retrieves one', async () => {
      const a = await subscribe();
      const b = await subscribe();
      await emulator.advanceTime(32 * 86_400);
      const client = stripe();

      const ofA = await client.invoices.list({ customer: a.customer.id });
      expect(ofA.data.map((i) => i.billing_reason)).toEqual(['subscription_cycle', 'subscription_create']);
      expect(ofA.data[0].created).toBeGreaterThan(ofA.data[1].created);
      const ofB = await client.invoices.list({ subscription: b.subscription.id, limit: 1 });
      expect(ofB.has_more).toBe(true);
      const all: string[] = [];
      for await (const invoice of client.invoices.list({ subscription: b.subscription.id, limit: 1 })) all.push(invoice.id);
      expect(all).toHaveLength(2);
      const one = await client.invoices.retrieve(ofB.data[0].id);
      for (const key of ['number', 'status', 'amount_due', 'amount_paid', 'subtotal', 'total_excluding_tax', 'total_taxes', 'total', 'currency', 'customer', 'subscription', 'created', 'period_start', 'period_end', 'hosted_invoice_url']) {
        expect(one).toHaveProperty(key);
      }
    });
  });

  describe('billing meters', () => {
    it('creates and lists meters', async () => {
      const client = stripe();
      const meter = await client.billing.meters.create({ display_name: 'Messages', event_name: 'ally_messages', default_aggregation: { formula: 'count' } });
      expect(meter).toMatchObject({ object: 'billing.meter', event_name: 'ally_messages', status: 'active', default_aggregation: { formula: 'count' }, customer_mapping: { event_payload_key: 'stripe_customer_id', type: 'by_id' } });
      expect((await client.billing.meters.list()).data.map((m) => m.id)).toEqual([meter.id, 'mtr_test_tokens']);
      await expect(client.billing.meters.create({ display_name: 'Again', event_name: 'ally_messages', default_aggregation: { formula: 'sum' } })).rejects.toMatchObject({ statusCode: 400, param: 'event_name' });
    });

    it('records events, refuses a reused identifier (400 resource_already_exists), replays a reused idempotency key, and sums summaries', async () => {
      const client = stripe();
      const customer = await client.customers.create({});
      const t = emulator.now();
      const payload = { stripe_customer_id: customer.id, value: '25' };

      const first = await client.billing.meterEvents.create({ event_name: 'ally_tokens', payload, identifier: 'usage-1', timestamp: t }, { idempotencyKey: 'meter-usage-1' });
      expect(first).toMatchObject({ object: 'billing.meter_event', event_name: 'ally_tokens', identifier: 'usage-1', payload, timestamp: t });

      // A retry of the same request (same idempotency key) is answered from the store, not counted again.
      const replay = await client.billing.meterEvents.create({ event_name: 'ally_tokens', payload, identifier: 'usage-1', timestamp: t }, { idempotencyKey: 'meter-usage-1' });
      const { lastResponse, ...replayed } = replay;
      expect(replayed).toEqual((({ lastResponse: _, ...rest }) => rest)(first));
      expect(lastResponse.headers['idempotent-replayed']).toBe('true');

      // The same identifier under another key is refused, as Stripe does.
      const dup = await client.billing.meterEvents.create({ event_name: 'ally_tokens', payload, identifier: 'usage-1', timestamp: t }).catch((e) => e);
      expect(dup).toMatchObject({ type: 'StripeInvalidRequestError', statusCode: 400, code: 'resource_already_exists', param: 'identifier', message: 'An event already exists with identifier usage-1.' });
      expect(dup.headers['stripe-should-retry']).toBe('false');

      await client.billing.meterEvents.create({ event_name: 'ally_tokens', payload: { stripe_customer_id: customer.id, value: '17' }, identifier: 'usage-2', timestamp: t });
      await client.billing.meterEvents.create({ event_name: 'ally_tokens', payload: { stripe_customer_id: 'cus_other', value: '1000' }, identifier: 'usage-3', timestamp: t });
      expect(emulator.meterEvents({ customer: customer.id }).map((e) => [e.identifier, e.value])).toEqual([
        ['usage-1', 25],
        ['usage-2', 17],
      ]);

      const start = Math.floor(t / 3600) * 3600 - 3600;
      const summaries = await client.billing.meters.listEventSummaries('mtr_test_tokens', { customer: customer.id, start_time: start, end_time: start + 3 * 3600 });
      expect(summaries.data).toEqual([expect.objectContaining({ object: 'billing.meter_event_summary', aggregated_value: 42, meter: 'mtr_test_tokens', start_time: start, end_time: start + 3 * 3600 })]);
      const hourly = await client.billing.meters.listEventSummaries('mtr_test_tokens', { customer: customer.id, start_time: start, end_time: start + 3 * 3600, value_grouping_window: 'hour' });
      expect(hourly.data.map((s) => s.aggregated_value)).toEqual([0, 42, 0]);

      // Uniqueness holds for 24 hours.
      await emulator.advanceTime(86_401);
      await expect(client.billing.meterEvents.create({ event_name: 'ally_tokens', payload, identifier: 'usage-1' })).resolves.toMatchObject({ identifier: 'usage-1' });
    });
  });

  describe('idempotency and faults', () => {
    it('replays the same key with the same body and refuses it with other parameters', async () => {
      const client = stripe();
      const a = await client.customers.create({ email: 'x@example.com' }, { idempotencyKey: 'create-x' });
      const b = await client.customers.create({ email: 'x@example.com' }, { idempotencyKey: 'create-x' });
      expect(b.id).toBe(a.id);
      expect(emulator.events({ type: 'customer.created' })).toHaveLength(1);
      expect(emulator.requests({ path: '/v1/customers' }).map((r) => r.replayed)).toEqual([false, true]);
      await expect(client.customers.create({ email: 'y@example.com' }, { idempotencyKey: 'create-x' })).rejects.toMatchObject({ type: 'StripeIdempotencyError', statusCode: 400 });
    });

    it('injects a 429 the SDK surfaces without retrying (maxNetworkRetries: 0), only on the given path', async () => {
      const client = stripe();
      emulator.failNext({ status: 429, times: 1, path: '/v1/billing/meter_events' });
      await expect(client.customers.create({})).resolves.toBeDefined();
      const err = await client.billing.meterEvents.create({ event_name: 'ally_tokens', payload: { stripe_customer_id: 'cus_x', value: '1' } }).catch((e) => e);
      expect(err).toMatchObject({ type: 'StripeRateLimitError', statusCode: 429, code: 'rate_limit' });
      expect(emulator.meterEvents()).toHaveLength(0);
      await expect(client.billing.meterEvents.create({ event_name: 'ally_tokens', payload: { stripe_customer_id: 'cus_x', value: '1' } })).resolves.toBeDefined();
    });

    it('a 500 is retried by the SDK under the same idempotency key and runs once', async () => {
      emulator.failNext({ status: 500, times: 1 });
      const client = stripe({ maxNetworkRetries: 1 });
      const customer = await client.customers.create({ email: 'retry@example.com' });
      const calls = emulator.requests({ path: '/v1/customers', method: 'POST' });
      expect(calls.map((r) => r.status)).toEqual([500, 200]);
      expect(calls[0].idempotencyKey).toBe(calls[1].idempotencyKey);
      expect(emulator.events({ type: 'customer.created' }).map((e) => e.data.object.id)).toEqual([customer.id]);
    });

    it('hangs a request until the SDK times out', async () => {
      emulator.hangNext({ path: '/v1/customers' });
      await expect(stripe({ timeout: 300 }).customers.create({})).rejects.toMatchObject({ type: 'StripeConnectionError' });
    });
  });

  describe('webhooks', () => {
    it('sends an arbitrary event, redelivers it with the same id, and records the status codes', async () => {
      receiverStatus = 500;
      const event = emulator.sendEvent('invoice.payment_failed', { id: 'in_123', object: 'invoice', customer: 'cus_1' });
      await emulator.flushWebhooks();
      receiverStatus = 200;
      const again = await emulator.redeliver(event.id, 2);

      expect(again.map((d) => [d.attempt, d.redelivery, d.status])).toEqual([
        [2, true, 200],
        [3, true, 200],
      ]);
      expect(emulator.deliveries({ eventId: event.id }).map((d) => d.status)).toEqual([500, 200, 200]);
      expect(received.map((r) => r.event!.id)).toEqual([event.id, event.id, event.id]);
      expect(new Set(received.map((r) => r.raw)).size).toBe(1);
      expect(received[0].event).toMatchObject({ type: 'invoice.payment_failed', data: { object: { id: 'in_123' } }, request: { id: null, idempotency_key: null } });
    });

    it('signs exactly as Stripe: t=<ts>,v1=<hmac-sha256 of "<ts>.<payload>">', () => {
      const header = signStripePayload('{"id":"evt_1"}', 'whsec_test', 1_700_000_000);
      expect(header).toBe(stripe().webhooks.generateTestHeaderString({ payload: '{"id":"evt_1"}', secret: 'whsec_test', timestamp: 1_700_000_000 }));
    });

    it('delivers to an endpoint set over HTTP and to endpoints created with the API, each with its secret', async () => {
      const client = stripe();
      const endpoint = await client.webhookEndpoints.create({ url: receiverUrl, enabled_events: ['customer.created'] });
      expect(endpoint.secret).toMatch(/^whsec_/);
      const res = await fetch(`${emulator.url}/__emulator/webhook-endpoint`, { method: 'POST', body: JSON.stringify({ url: receiverUrl, events: ['invoice.paid'] }) });
      expect(await res.json()).toMatchObject({ url: receiverUrl, secret: emulator.webhookSecret });

      await client.customers.create({});
      await emulator.flushWebhooks();
      expect(emulator.deliveries().map((d) => d.endpointId)).toEqual([endpoint.id]);
      const delivered = emulator.deliveries()[0];
      expect(client.webhooks.constructEvent(delivered.payload, delivered.signature, endpoint.secret!).type).toBe('customer.created');
    });
  });
});
