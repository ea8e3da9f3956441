import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import Stripe from 'stripe';
import { billingService } from '@ally/billing';
import { chatService } from '@ally/chat';
import { signStripePayload, startOpenAIEmulator, startStripeEmulator, type OpenAIEmulator, type StripeEmulator } from '@ally/emulators';
import { gatewayService } from '@ally/gateway';
import { identityService } from '@ally/identity';
import { privacyRpcs } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { confirmEmail, createTestEnv, httpClient, lastEvent, waitFor, type TestEnv } from '@ally/testing';
import { expectProblem } from './problem-assertions.js';
import { billingEnv, chatEnv } from './service-env.js';

const PASSWORD = 'Tannenzapfen im Schnee';

describe('billing through the gateway: Checkout, webhooks, seats, usage and quota', () => {
  let env: TestEnv;
  let stripe: StripeEmulator;
  let llm: OpenAIEmulator;
  let base: string;
  let http: ReturnType<typeof httpClient>;

  beforeAll(async () => {
    env = await createTestEnv();
    stripe = await startStripeEmulator();
    llm = await startOpenAIEmulator();
    await env.start(identityService);
    await env.start(billingService, billingEnv(stripe, { METER_POLL_MS: '100', QUOTA_REFRESH_MS: '50' }));
    await env.start(chatService, chatEnv(llm, { QUOTA_CACHE_MS: '0' }));
    base = (await env.start(gatewayService)).url;
    http = httpClient(base);
    stripe.setWebhookEndpoint(`${base}/v1/webhooks/stripe`, { secret: stripe.webhookSecret });
  });

  afterAll(async () => {
    await env?.close();
    await stripe?.close();
    await llm?.close();
  });

  const stripeSdk = () => {
    const url = new URL(stripe.url);
    return new Stripe('sk_test_emulator', { host: url.hostname, port: Number(url.port), protocol: 'http' });
  };
  /** Confirmed, as an owner must be to invite. */
  const register = async (email: string) => {
    const body = (await http.post('/v1/auth/register', { email, password: PASSWORD, firstName: 'Nora', lastName: 'Vogel' })).body;
    await confirmEmail(env, body.user.id);
    return body;
  };
  /** Checkout paid at the emulator; answers the subscription once billing has it active. */
  const subscribe = async (token: string, workspace: string, plan: string) => {
    const checkout = await http.post('/v1/billing/checkout', { workspace, plan }, token);
    stripe.completeCheckout(checkout.body.url.split('/').pop());
    await stripe.flushWebhooks();
    return waitFor(async () => {
      const r = await http.get(`/v1/billing/subscription?workspace=${workspace}`, token);
      return r.body.status === 'active' ? r.body : undefined;
    }, 'the subscription to become active');
  };
  /** What privacy's erasure saga asks identity for: the account goes, and an organisation it was the last member of. */
  const eraseAccount = async (userId: string) => {
    const rpc = new RpcClient(await env.nats(), env.prefix);
    await rpc.connect();
    try {
      await rpc.call(privacyRpcs('identity').erase, { userId, scope: 'all' });
    } finally {
      await rpc.close();
    }
  };
  const join = async (ownerToken: string, orgId: string, email: string) => {
    const invite = (await http.post(`/v1/orgs/${orgId}/invitations`, { email, role: 'member' }, ownerToken)).body;
    const event = await lastEvent<{ invitationId: string; token: string }>(env, 'identity.invitation.created', (e) => e.data.invitationId === invite.id);
    const member = await register(email);
    expect((await http.post('/v1/invitations/accept', { token: event.data.token }, member.accessToken)).status).toBe(200);
    return member;
  };

  it('subscribes through Checkout, follows seats, meters usage, and refuses chat over the cap with 402', async () => {
    const owner = await register('nora@example.eu');
    const org = (await http.post('/v1/orgs', { name: 'Vogel Medien GmbH' }, owner.accessToken)).body;
    await join(owner.accessToken, org.id, 'max@example.eu');

    const plans = await http.get('/v1/billing/plans');
    expect(plans.body).toMatchObject({ nextCursor: null });
    expect(plans.body.data.map((p: { id: string }) => p.id)).toEqual(['free', 'team', 'business']);
    // Paged as every list is: `?limit=&cursor=`.
    const first = (await http.get('/v1/billing/plans?limit=2')).body;
    expect(first.data.map((p: { id: string }) => p.id)).toEqual(['free', 'team']);
    const rest = (await http.get(`/v1/billing/plans?limit=2&cursor=${first.nextCursor}`)).body;
    expect(rest).toMatchObject({ data: [{ id: 'business' }], nextCursor: null });
    expectProblem(await http.get('/v1/billing/plans?cursor=bm90LWEtcGxhbg'), 400, ['cursor']);

    const checkout = await http.post('/v1/billing/checkout', { workspace: org.id, plan: 'team' }, owner.accessToken);
    expect(checkout.status).toBe(200);
    const sessionId = checkout.body.url.split('/').pop();
    stripe.completeCheckout(sessionId);
    await stripe.flushWebhooks();
    // Active, with a seat per member (the second member's join may reach billing just after Checkout).
    const sub = await waitFor(async () => {
      const r = await http.get(`/v1/billing/subscription?workspace=${org.id}`, owner.accessToken);
      return r.body.status === 'active' && r.body.seats === 2 ? r.body : undefined;
    }, 'the subscription to become active with two seats');
    expect(sub).toMatchObject({ plan: 'team', seats: 2 });

    // A third member while Stripe is away for longer than the SDK's retries and the event's five attempts: the
    // seat count follows at Stripe once it is back (the event waited for it; it was dead-lettered, and the seat lost).
    stripe.failNext({ status: 503, path: /^\/v1\/subscriptions\/sub_/, method: 'POST', times: 16 });
    await join(owner.accessToken, org.id, 'ida@example.eu');
    await waitFor(async () => {
      const r = await http.get(`/v1/billing/subscription?workspace=${org.id}`, owner.accessToken);
      return r.body.seats === 3 ? r : undefined;
    }, 'three seats', 45_000);
    expect(stripe.requests({ method: 'POST', path: /^\/v1\/subscriptions\/sub_/ }).filter((r) => r.status === 503)).toHaveLength(16);

    // Usage from chat lands in the ledger and at Stripe's meter.
    const conversation = (await http.post('/v1/conversations', { workspace: org.id }, owner.accessToken)).body.id;
    const answer = await http.post(`/v1/conversations/${conversation}/messages`, { content: 'Plane unseren Workshop' }, owner.accessToken);
    expect(answer.status).toBe(201);
    const usage = await waitFor(async () => {
      const r = await http.get(`/v1/billing/usage?workspace=${org.id}`, owner.accessToken);
      return r.body.tokensUsed > 0 ? r.body : undefined;
    }, 'usage to appear');
    expect(usage).toMatchObject({ tokenQuota: 3 * 2_000_000, byModel: [expect.objectContaining({ model: 'gpt-4o-mini' })] });
    await waitFor(async () => stripe.meterEvents().some((m) => m.identifier === answer.body.id), 'the meter event at Stripe');

    // A cap a little above what is used: a message that alone needs more than is left is refused before any model sees it.
    expect((await http.request('PUT', '/v1/billing/caps', { body: { workspace: org.id, monthlyTokens: usage.tokensUsed + 20 }, token: owner.accessToken })).status).toBe(200);
    const tooLong = await waitFor(async () => {
      const r = await http.post(`/v1/conversations/${conversation}/messages`, { content: 'Bitte fasse zusammen: '.repeat(60) }, owner.accessToken);
      return r.status === 402 ? r : undefined;
    }, 'billing to apply the new cap');
    expect(tooLong.body.detail).toMatch(/needs about \d+ tokens, more than the \d+ left/);

    // A workspace cap below what is used: the next message is refused with 402, naming the cap.
    expect((await http.request('PUT', '/v1/billing/caps', { body: { workspace: org.id, monthlyTokens: 1 }, token: owner.accessToken })).status).toBe(200);
    const refused = await http.post(`/v1/conversations/${conversation}/messages`, { content: 'Noch eine Frage' }, owner.accessToken);
    expect(refused.status).toBe(402);
    expect(refused.body.detail).toMatch(/spend cap/);

    const invoices = await http.get(`/v1/billing/invoices?workspace=${org.id}`, owner.accessToken);
    expect(invoices.body.data.length).toBeGreaterThan(0);
    expect(invoices.body.data[0]).toMatchObject({ status: 'paid', currency: 'eur' });
  });

  it('bills a member who joined while Checkout was open from the moment the subscription starts', async () => {
    const owner = await register('jonas@example.eu');
    const org = (await http.post('/v1/orgs', { name: 'Kranich Logistik GmbH' }, owner.accessToken)).body;
    const checkout = await http.post('/v1/billing/checkout', { workspace: org.id, plan: 'team' }, owner.accessToken);
    expect(checkout.status).toBe(200); // one seat: the owner
    await join(owner.accessToken, org.id, 'lina@example.eu');
    await waitFor(async () => ((await http.get(`/v1/billing/subscription?workspace=${org.id}`, owner.accessToken)).body.seats === 2 ? true : undefined), 'billing to count the new member');

    stripe.completeCheckout(checkout.body.url.split('/').pop());
    await stripe.flushWebhooks();
    const sub = await waitFor(async () => {
      await stripe.flushWebhooks();
      const r = await http.get(`/v1/billing/subscription?workspace=${org.id}`, owner.accessToken);
      return r.body.status === 'active' && r.body.seats === 2 ? r.body : undefined;
    }, 'the subscription to hold both members');
    expect(sub).toMatchObject({ plan: 'team', seats: 2 });
  });

  it("ends a dissolved organisation's subscription with its paid period: its last member was erased, and nobody is left to cancel", async () => {
    const owner = await register('solo@example.eu');
    const org = (await http.post('/v1/orgs', { name: 'Einzel Beratung GmbH' }, owner.accessToken)).body;
    const live = await subscribe(owner.accessToken, org.id, 'team');
    expect(live.cancelAtPeriodEnd).toBe(false);

    await eraseAccount(owner.user.id);
    expect(await env.sql(`SELECT id FROM identity.organizations WHERE id = $1`, [org.id])).toEqual([]);
    await lastEvent(env, 'identity.organization.dissolved', (e: { data: { orgId: string } }) => e.data.orgId === org.id);
    const [{ stripe_subscription_id: id }] = await env.sql(`SELECT stripe_subscription_id FROM billing.subscriptions WHERE workspace = $1`, [org.id]);
    await waitFor(async () => ((await stripeSdk().subscriptions.retrieve(id)).cancel_at_period_end ? true : undefined), 'the subscription to end with its period at Stripe');
    await stripe.flushWebhooks();
    await waitFor(async () => ((await env.sql(`SELECT 1 FROM billing.subscriptions WHERE workspace = $1 AND cancel_at_period_end`, [org.id])).length ? true : undefined), "billing's record to say so");
  });

  it("cancels a dissolved organisation's subscription now when it is past due: nobody is left to pay what Stripe keeps asking for", async () => {
    const owner = await register('rueckstand@example.eu');
    const org = (await http.post('/v1/orgs', { name: 'Rückstand KG' }, owner.accessToken)).body;
    await subscribe(owner.accessToken, org.id, 'team');
    const [{ stripe_customer_id: customer, stripe_subscription_id: id }] = await env.sql(
      `SELECT c.stripe_customer_id, s.stripe_subscription_id FROM billing.customers c JOIN billing.subscriptions s ON s.workspace = c.workspace WHERE c.workspace = $1`,
      [org.id],
    );
    stripe.declinePayments(customer);
    try {
      await stripe.advanceTime(32 * 86_400);
      expect((await stripeSdk().subscriptions.retrieve(id)).status).toBe('past_due');
      await eraseAccount(owner.user.id);
      await waitFor(async () => ((await stripeSdk().subscriptions.retrieve(id)).status === 'canceled' ? true : undefined), 'the subscription to be cancelled at Stripe');
      await stripe.flushWebhooks();
    } finally {
      stripe.declinePayments(customer, false);
    }
  });

  it("ends a dissolved organisation's subscription that Stripe has and billing has not heard of yet (its webhook on its way)", async () => {
    const owner = await register('eilig@example.eu');
    const org = (await http.post('/v1/orgs', { name: 'Eilig Handel GmbH' }, owner.accessToken)).body;
    const checkout = await http.post('/v1/billing/checkout', { workspace: org.id, plan: 'team' }, owner.accessToken);
    // Stripe's webhooks do not reach billing meanwhile: it never hears of the subscription.
    stripe.setWebhookEndpoint(null);
    try {
      stripe.completeCheckout(checkout.body.url.split('/').pop());
      const [{ stripe_customer_id: customer }] = await env.sql(`SELECT stripe_customer_id FROM billing.customers WHERE workspace = $1`, [org.id]);
      await eraseAccount(owner.user.id);
      await waitFor(
        async () => ((await stripeSdk().subscriptions.list({ customer, status: 'all' })).data.some((sub) => sub.cancel_at_period_end) ? true : undefined),
        'the subscription to end with its period at Stripe',
      );
      expect(await env.sql(`SELECT 1 FROM billing.subscriptions WHERE workspace = $1`, [org.id])).toEqual([]);
    } finally {
      stripe.setWebhookEndpoint(`${base}/v1/webhooks/stripe`, { secret: stripe.webhookSecret });
    }
  });

  it("answers Stripe's refusal or failure as ours (502, 503), not with Stripe's status and words", async () => {
    const owner = await register('ole@example.eu');
    const checkout = () => http.post('/v1/billing/checkout', { workspace: 'private', plan: 'team' }, owner.accessToken);
    for (const [status, ours] of [[401, 502], [402, 502], [400, 502], [429, 503], [500, 503]] as const) {
      stripe.failNext({ status, path: '/v1/checkout/sessions', method: 'POST', shouldRetry: false });
      const res = await checkout();
      expectProblem(res, ours);
      expect(res.body.detail).not.toMatch(/api key|card|emulated|sk_test/i);
    }
    expect((await checkout()).status).toBe(200);
  });

  it('keeps one Checkout open per workspace: the same plan reopens it, another replaces it, and none while a subscription runs', async () => {
    const owner = await register('hanna@example.eu');
    const checkout = (plan: string) => http.post('/v1/billing/checkout', { workspace: 'private', plan }, owner.accessToken);
    const first = await checkout('team');
    expect(first.status).toBe(200);
    expect((await checkout('team')).body.url).toBe(first.body.url);
    const other = await checkout('business');
    expect(other.body.url).not.toBe(first.body.url);
    const sessions = await stripeSdk().checkout.sessions.list({ limit: 100 });
    const mine = sessions.data.filter((x) => x.client_reference_id === `private:${owner.user.id}`);
    expect(mine.map((x) => x.status).sort()).toEqual(['expired', 'open']);

    stripe.completeCheckout(other.body.url.split('/').pop());
    await stripe.flushWebhooks();
    await waitFor(async () => ((await http.get('/v1/billing/subscription?workspace=private', owner.accessToken)).body.status === 'active' ? true : undefined), 'the subscription');
    expect((await checkout('team')).status).toBe(409);
  });

  it('applies a webhook delivered 20 times once, ignores a late older update, and refuses a bad signature', async () => {
    const owner = await register('lena@example.eu');
    const org = (await http.post('/v1/orgs', { name: 'Lena Studio' }, owner.accessToken)).body;
    await subscribe(owner.accessToken, org.id, 'business');

    const created = stripe.events({ type: 'customer.subscription.created' }).at(-1)!;
    const before = await env.sql(`SELECT count(*)::int AS n FROM billing.outbox`);
    await stripe.redeliver(created.id as string, 20);
    expect(await env.sql(`SELECT count(*)::int AS n FROM billing.processed_webhooks WHERE event_id = $1`, [created.id])).toEqual([{ n: 1 }]);
    expect(await env.sql(`SELECT count(*)::int AS n FROM billing.outbox`)).toEqual(before);

    // An update that Stripe made earlier than the state we hold arrives late: no rollback.
    const current = (created.data as { object: Record<string, any> }).object;
    const stale = { id: 'evt_stale_1', object: 'event', type: 'customer.subscription.updated', created: (created.created as number) - 3600, data: { object: { ...current, status: 'past_due' } }, api_version: stripe.apiVersion, livemode: false };
    const payload = JSON.stringify(stale);
    const late = await http.request('POST', '/v1/webhooks/stripe', { raw: payload, headers: { 'content-type': 'application/json', 'stripe-signature': signStripePayload(payload, stripe.webhookSecret) } });
    expect(late.status).toBe(200);
    expect((await http.get(`/v1/billing/subscription?workspace=${org.id}`, owner.accessToken)).body.status).toBe('active');

    const forged = await http.request('POST', '/v1/webhooks/stripe', {
      raw: JSON.stringify({ ...stale, id: 'evt_forged', created: Math.floor(Date.now() / 1000) + 60, data: { object: { ...current, status: 'canceled' } } }),
      headers: { 'content-type': 'application/json', 'stripe-signature': signStripePayload(payload, 'whsec_wrong') },
    });
    expect(forged.status).toBe(400);
    expect(forged.headers.get('content-type')).toContain('application/problem+json');
    expect((await http.get(`/v1/billing/subscription?workspace=${org.id}`, owner.accessToken)).body.status).toBe('active');
    expect(await env.sql(`SELECT * FROM billing.processed_webhooks WHERE event_id = 'evt_forged'`)).toEqual([]);

    // A signature header no Stripe sends is named as the header it is, not as a field of the body.
    const overlong = await http.request('POST', '/v1/webhooks/stripe', { raw: payload, headers: { 'content-type': 'application/json', 'stripe-signature': `t=1,v1=${'a'.repeat(3000)}` } });
    expect(overlong.status).toBe(400);
    expect(overlong.body.errors).toEqual([{ field: 'Stripe-Signature', message: 'must be at most 2000 characters' }]);
  });

  it('pages invoices as every list does: ?limit=&cursor= → { data, nextCursor }, newest first, none skipped or repeated', async () => {
    const owner = await register('greta@example.eu');
    const mine = `private:${owner.user.id}`;
    // As Stripe's webhooks mirror them: times in whole seconds, two invoices sharing one.
    const invoice = (id: string, workspace: string, at: string) =>
      env.sql(
        `INSERT INTO billing.invoices (stripe_invoice_id, workspace, number, status, currency, subtotal, tax, total, amount_paid, customer_ref, created_at)
         VALUES ($1, $2, $1, 'paid', 'eur', 1000, 190, 1190, 1190, 'cus_greta', $3)`,
        [id, workspace, at],
      );
    await invoice('in_march', mine, '2026-03-01T00:00:00Z');
    await invoice('in_april_a', mine, '2026-04-01T00:00:00Z');
    await invoice('in_april_b', mine, '2026-04-01T00:00:00Z');
    await invoice('in_someone_else', 'private:0b7c7b7e-7a53-4c1e-9d43-3f1f0d7f9c11', '2026-04-15T00:00:00Z');
    const list = (query: string) => http.get(`/v1/billing/invoices?workspace=private${query}`, owner.accessToken);

    const all = await list('');
    expect(all.status).toBe(200);
    expect({ ids: all.body.data.map((i: { id: string }) => i.id), nextCursor: all.body.nextCursor }).toEqual({ ids: ['in_april_b', 'in_april_a', 'in_march'], nextCursor: null });

    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page = await list(`&limit=1${cursor ? `&cursor=${cursor}` : ''}`);
      expect(page.status).toBe(200);
      expect(page.body.data).toHaveLength(1);
      seen.push(page.body.data[0].id);
      cursor = page.body.nextCursor;
    } while (cursor && seen.length < 5);
    expect(seen).toEqual(['in_april_b', 'in_april_a', 'in_march']);

    expectProblem(await list('&limit=0'), 400, ['limit']);
    expectProblem(await list('&cursor=bm9wZQ'), 400, ['cursor']);
    const unknown = await list('&page=2');
    expectProblem(unknown, 400, ['page']);
    expect(unknown.body.errors).toContainEqual({ field: 'page', message: 'is not a known query parameter' });
  });

  it('answers a webhook body under the body limit but too large for the broker once encoded with a 413, not a 500', async () => {
    // 900 KB is within BODY_LIMIT_BYTES (1 MiB); base64 for the RPC makes it 1.2 MB, over NATS's 1 MB.
    const payload = JSON.stringify({ id: 'evt_large', object: 'event', padding: 'x'.repeat(900_000) });
    const res = await http.request('POST', '/v1/webhooks/stripe', { raw: payload, headers: { 'content-type': 'application/json', 'stripe-signature': signStripePayload(payload, stripe.webhookSecret) } });
    expect(res.status).toBe(413);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    expect(res.body.detail).toBe('The request is too large to pass on to the billing service');
  });
});
