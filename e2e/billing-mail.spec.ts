import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import Stripe from 'stripe';
import type { BrevoEmulator, StripeEmulator } from '@ally/emulators';
import { confirmEmail, lastEvent, publishEvent, waitFor, type TestEnv } from '@ally/testing';
import { startPlatformWorld, type PlatformWorld } from './platform-world.js';

const PASSWORD = 'Kastanienallee im Herbst';

describe('billing as an owner meets it by mail: Checkout, renewals, cancellation, a failed payment, caps', () => {
  let world: PlatformWorld;
  let env: TestEnv;
  let stripe: StripeEmulator;
  let brevo: BrevoEmulator;
  let http: PlatformWorld['http'];

  beforeAll(async () => {
    world = await startPlatformWorld({
      privacy: false,
      gateway: true,
      billing: { QUOTA_REFRESH_MS: '50' },
      notify: { BREVO_WEBHOOK_SECRET: 'billing-mail-webhook-secret' },
    });
    ({ env, stripe, brevo, http } = world);
  });

  afterAll(async () => {
    await world?.close();
  });

  const stripeSdk = () => {
    const url = new URL(stripe.url);
    return new Stripe('sk_test_emulator', { host: url.hostname, port: Number(url.port), protocol: 'http' });
  };
  /** Confirmed, as an owner must be to invite. */
  const register = async (email: string, locale: 'de' | 'en', firstName = 'Greta') => {
    const body = (await http.post('/v1/auth/register', { email, password: PASSWORD, firstName, lastName: 'Linde', locale })).body;
    await confirmEmail(env, body.user.id);
    return body;
  };
  /** Oldest first (the emulator lists newest first). */
  const mailsAbout = (email: string, subject: RegExp) => brevo.mails(email).filter((m) => subject.test(m.subject)).reverse();
  const subscribe = async (token: string, workspace: string, plan: string) => {
    const checkout = await http.post('/v1/billing/checkout', { workspace, plan }, token);
    expect(checkout.status).toBe(200);
    stripe.completeCheckout(checkout.body.url.split('/').pop());
    await stripe.flushWebhooks();
    await waitFor(async () => ((await http.get(`/v1/billing/subscription?workspace=${workspace}`, token)).body.status === 'active' ? true : undefined), 'an active subscription');
  };
  /** Lets every event reach notify and its mails reach Brevo before counting. */
  const settle = async () => {
    await stripe.flushWebhooks();
    await waitFor(async () => ((await env.sql(`SELECT count(*)::int AS n FROM billing.outbox WHERE sent_at IS NULL`))[0].n === 0 ? true : undefined), 'billing outbox drained');
    await waitFor(async () => ((await env.sql(`SELECT count(*)::int AS n FROM notify.deliveries WHERE status IN ('pending', 'sending')`))[0].n === 0 ? true : undefined), 'notify deliveries sent');
    await new Promise((r) => setTimeout(r, 300));
    await waitFor(async () => ((await env.sql(`SELECT count(*)::int AS n FROM notify.deliveries WHERE status IN ('pending', 'sending')`))[0].n === 0 ? true : undefined), 'notify deliveries sent');
  };

  it('tells the owner once about a new subscription, in their language, not again about each monthly renewal, and again when it is cancelled', async () => {
    const owner = await register('greta@example.eu', 'de');
    await subscribe(owner.accessToken, 'private', 'team');
    const [created] = await waitFor(async () => {
      const m = mailsAbout('greta@example.eu', /Abonnement/);
      return m.length ? m : undefined;
    }, 'the subscription mail');
    // German words for what Stripe calls `active`, a singular seat, and which workspace it is.
    expect(created.textContent).toContain('das Abonnement Ihres privaten Arbeitsbereichs: Tarif Team, Status aktiv, 1 Platz.');
    expect(created.htmlContent).toContain('EU-souveräner KI-Assistent');

    // Two renewals: each a customer.subscription.updated (a new period, nothing else) and a paid invoice.
    await stripe.advanceTime(32 * 86_400);
    await stripe.flushWebhooks();
    await stripe.advanceTime(32 * 86_400);
    await waitFor(async () => ((await http.get('/v1/billing/invoices?workspace=private', owner.accessToken)).body.data.length === 3 ? true : undefined), 'three invoices');
    await settle();
    expect(mailsAbout('greta@example.eu', /Abonnement/)).toHaveLength(1);

    // Cancelled in the Customer Portal: still active until the period ends, and the mail says so.
    const [sub] = (await stripeSdk().subscriptions.list({ limit: 100 })).data.filter((s) => s.metadata?.workspace === `private:${owner.user.id}`);
    await stripeSdk().subscriptions.update(sub.id, { cancel_at_period_end: true });
    const cancelled = await waitFor(async () => {
      const m = mailsAbout('greta@example.eu', /Abonnement/);
      return m.length === 2 ? m[m.length - 1] : undefined;
    }, 'the cancellation mail');
    const view = (await http.get('/v1/billing/subscription?workspace=private', owner.accessToken)).body;
    expect(view).toMatchObject({ status: 'active', cancelAtPeriodEnd: true });
    const ends = new Intl.DateTimeFormat('de-DE', { day: 'numeric', month: 'long', year: 'numeric', timeZone: 'Europe/Berlin' }).format(new Date(view.currentPeriodEnd));
    expect(cancelled.textContent).toContain(`Es ist gekündigt und endet am ${ends}.`);
  });

  it('mails an English owner about a failed renewal payment in English, with the status in words', async () => {
    const owner = await register('oliver@example.eu', 'en', 'Oliver');
    const org = (await http.post('/v1/orgs', { name: 'Oliver Ltd' }, owner.accessToken)).body;
    await subscribe(owner.accessToken, org.id, 'business');
    await settle();
    const [customer] = await env.sql(`SELECT stripe_customer_id FROM billing.customers WHERE workspace = $1`, [org.id]);
    stripe.declinePayments(customer.stripe_customer_id);
    await stripe.advanceTime(32 * 86_400);
    await waitFor(async () => ((await http.get(`/v1/billing/subscription?workspace=${org.id}`, owner.accessToken)).body.status === 'past_due' ? true : undefined), 'past_due');
    await settle();
    const [failed] = mailsAbout('oliver@example.eu', /Payment for Ally failed/);
    // Which of the owner's subscriptions: the organisation's, by its name.
    expect(failed.textContent).toContain('the last payment for the Ally subscription of “Oliver Ltd” failed.');
    const changes = mailsAbout('oliver@example.eu', /subscription changed/);
    expect(changes.map((m) => m.textContent!.match(/the subscription of “Oliver Ltd”: [^\n]*/)![0])).toEqual([
      'the subscription of “Oliver Ltd”: plan Business, status active, 1 seat.',
      'the subscription of “Oliver Ltd”: plan Business, status payment overdue, 1 seat.',
    ]);
  });

  it('refuses a spend cap for someone who is not a member of the organisation with a 400 naming userId', async () => {
    const owner = await register('carla@example.eu', 'de', 'Carla');
    const stranger = await register('stefan@example.eu', 'de', 'Stefan');
    const org = (await http.post('/v1/orgs', { name: 'Carla KG' }, owner.accessToken)).body;
    const refused = await http.request('PUT', '/v1/billing/caps', { body: { workspace: org.id, userId: stranger.user.id, monthlyTokens: 1000 }, token: owner.accessToken });
    expect(refused.status).toBe(400);
    expect(refused.headers.get('content-type')).toContain('application/problem+json');
    expect(refused.body.errors).toEqual([{ field: 'userId', message: 'must be a member of the organisation' }]);
    expect(await env.sql(`SELECT 1 FROM billing.caps WHERE workspace = $1`, [org.id])).toEqual([]);

    // A member may be capped; their cap goes with them when they leave, and removing it then changes nothing.
    const invite = (await http.post(`/v1/orgs/${org.id}/invitations`, { email: 'stefan@example.eu', role: 'member' }, owner.accessToken)).body;
    const event = await lastEvent<{ invitationId: string; token: string }>(env, 'identity.invitation.created', (e) => e.data.invitationId === invite.id);
    expect((await http.post('/v1/invitations/accept', { token: event.data.token }, stranger.accessToken)).status).toBe(200);
    const capped = await http.request('PUT', '/v1/billing/caps', { body: { workspace: org.id, userId: stranger.user.id, monthlyTokens: 1000 }, token: owner.accessToken });
    expect(capped.status).toBe(200);
    expect((await http.request('DELETE', `/v1/orgs/${org.id}/members/${stranger.user.id}`, { token: owner.accessToken })).status).toBe(204);
    await waitFor(async () => ((await env.sql(`SELECT 1 FROM billing.caps WHERE workspace = $1`, [org.id])).length === 0 ? true : undefined), 'the cap to go with the member');
    const removed = await http.request('PUT', '/v1/billing/caps', { body: { workspace: org.id, userId: stranger.user.id, monthlyTokens: null }, token: owner.accessToken });
    expect(removed.status).toBe(200);
    expect(await env.sql(`SELECT 1 FROM billing.caps WHERE workspace = $1`, [org.id])).toEqual([]);
  });

  it("drops a leaver's cap also when their removal comes again after a newer member event (Stripe refused its first try)", async () => {
    const owner = await register('ottilie@example.eu', 'de', 'Ottilie');
    const org = (await http.post('/v1/orgs', { name: 'Kappe KG' }, owner.accessToken)).body;
    const join = async (email: string, firstName: string) => {
      const member = await register(email, 'de', firstName);
      const invite = (await http.post(`/v1/orgs/${org.id}/invitations`, { email, role: 'member' }, owner.accessToken)).body;
      const event = await lastEvent<{ invitationId: string; token: string }>(env, 'identity.invitation.created', (e) => e.data.invitationId === invite.id);
      return { member, token: event.data.token };
    };
    const anna = await join('anna.kappe@example.eu', 'Anna');
    expect((await http.post('/v1/invitations/accept', { token: anna.token }, anna.member.accessToken)).status).toBe(200);
    await subscribe(owner.accessToken, org.id, 'team');
    await waitFor(async () => ((await http.get(`/v1/billing/subscription?workspace=${org.id}`, owner.accessToken)).body.seats === 2 ? true : undefined), 'two seats');
    expect((await http.request('PUT', '/v1/billing/caps', { body: { workspace: org.id, userId: anna.member.user.id, monthlyTokens: 1000 }, token: owner.accessToken })).status).toBe(200);
    const bert = await join('bert.kappe@example.eu', 'Bert');
    // Stripe refuses the seat change of Anna's removal twice: its event comes again, after Bert's newer count.
    stripe.failNext({ status: 400, method: 'POST', path: /^\/v1\/subscriptions\//, times: 2 });
    expect((await http.request('DELETE', `/v1/orgs/${org.id}/members/${anna.member.user.id}`, { token: owner.accessToken })).status).toBe(204);
    expect((await http.post('/v1/invitations/accept', { token: bert.token }, bert.member.accessToken)).status).toBe(200);
    await waitFor(async () => ((await env.sql(`SELECT 1 FROM billing.caps WHERE workspace = $1 AND user_id = $2`, [org.id, anna.member.user.id])).length === 0 ? true : undefined), "Anna's cap to go", 20_000);

    // Back in the organisation with a new cap, a copy of the old removal arriving late leaves that cap alone.
    const removal = await lastEvent<{ orgId: string; userId: string; memberCount: number }>(env, 'identity.member.removed', (e) => e.data.userId === anna.member.user.id);
    const again = (await http.post(`/v1/orgs/${org.id}/invitations`, { email: 'anna.kappe@example.eu', role: 'member' }, owner.accessToken)).body;
    const againEvent = await lastEvent<{ invitationId: string; token: string }>(env, 'identity.invitation.created', (e) => e.data.invitationId === again.id);
    expect((await http.post('/v1/invitations/accept', { token: againEvent.data.token }, anna.member.accessToken)).status).toBe(200);
    await env.sql(`INSERT INTO billing.caps (workspace, user_id, monthly_tokens) VALUES ($1, $2, 500)`, [org.id, anna.member.user.id]);
    const late = { ...removal, id: randomUUID() };
    await publishEvent(env, late);
    await waitFor(async () => ((await env.sql(`SELECT 1 FROM billing.inbox WHERE event_id = $1 AND consumer = 'billing-seats'`, [late.id])).length ? true : undefined), 'the late copy to be consumed');
    expect(await env.sql(`SELECT monthly_tokens::int AS n FROM billing.caps WHERE workspace = $1 AND user_id = $2`, [org.id, anna.member.user.id])).toEqual([{ n: 500 }]);
  });
});
