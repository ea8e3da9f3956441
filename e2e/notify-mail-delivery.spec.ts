import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { jetstream } from '@nats-io/jetstream';
import { randomUUID } from 'node:crypto';
import { createEnvelope, eventsStreamName, IdentityRpc, NotifyRpc, privacyRpcs } from '@ally/contracts';
import type { BrevoEmulator } from '@ally/emulators';
import { deadLetterStreamName, DLQ_HEADERS, type RpcClient } from '@ally/messaging';
import { confirmEmail, publishEvent, waitFor, type RunningService, type TestEnv } from '@ally/testing';
import { startNotifyWorld, type NotifyWorld } from './notify-world.js';
import { addressHash } from './service-env.js';

const PASSWORD = 'Wanderweg durch den Schwarzwald';
const SECRET = 'brevo-webhook-secret-for-tests';

describe('notify: mail through Brevo, driven by events', () => {
  let world: NotifyWorld;
  let env: TestEnv;
  let brevo: BrevoEmulator;
  let notify: RunningService;
  let rpc: RpcClient;

  beforeAll(async () => {
    world = await startNotifyWorld({
      BREVO_WEBHOOK_SECRET: SECRET,
      NOTIFY_RETRY_BASE_MS: '50',
      NOTIFY_POLL_MS: '50',
      NOTIFY_RETRY_MAX_MS: '200',
      PUBLIC_BASE_URL: 'https://app.ally.example',
    });
    ({ env, brevo, notify, rpc } = world);
  });

  afterAll(async () => {
    await world?.close();
  });

  const register = (email: string, locale: 'de' | 'en') =>
    rpc.call(IdentityRpc.register, { email, password: PASSWORD, firstName: 'Mia', lastName: 'Berger', locale });
  /** Registered and confirmed, as an owner must be to invite. */
  const registerConfirmed = async (email: string, locale: 'de' | 'en') => {
    const reply = await register(email, locale);
    await confirmEmail(env, reply.user.id);
    return reply;
  };

  const mailsTo = (email: string, n: number) => waitFor(async () => (brevo.mails(email).length >= n ? brevo.mails(email) : undefined), `${n} mail(s) to ${email}`);

  const deliveryOf = async (template: string, userId: string) =>
    (await env.sql(`SELECT * FROM notify.deliveries WHERE template = $1 AND user_id = $2`, [template, userId]))[0];

  it('sends exactly one verification mail in the user language, even when the event arrives three times', async () => {
    const { user } = await register('mia@example.eu', 'en');
    const [mail] = await mailsTo('mia@example.eu', 1);
    expect(mail.subject).toBe('Please confirm your email address');
    expect(mail.textContent).toContain('Hello Mia');
    const link = mail.links.find((l) => l.includes('/verify-email?token='))!;
    expect(link.startsWith('https://app.ally.example/verify-email?token=')).toBe(true);

    // Redeliver the same envelope twice more, past JetStream's dedup (new Nats-Msg-Id).
    const js = jetstream(await env.nats());
    const stored = await (await js.jetstreamManager()).streams.getMessage(eventsStreamName(env.prefix), {
      last_by_subj: env.subject('ally.evt.identity.user.registered'),
    });
    for (let i = 0; i < 2; i++) await js.publish(stored!.subject, stored!.data, { msgID: randomUUID() });
    await new Promise((r) => setTimeout(r, 500));
    expect(brevo.mails('mia@example.eu')).toHaveLength(1);

    const delivery = await deliveryOf('verify-email', user.id);
    expect(delivery).toMatchObject({ status: 'sent', attempts: 1, recipient: null, variables: null, locale: 'en' });
    expect(delivery.provider_message_id).toBe(mail.messageId);
    expect(delivery.recipient_hash).toMatch(/^[0-9a-f]{64}$/);

    // The link verifies the account.
    await rpc.call(IdentityRpc.verifyEmail, { token: new URL(link).searchParams.get('token')! });
    const welcome = await mailsTo('mia@example.eu', 2);
    expect(welcome[0].subject).toBe('Welcome to Ally');
  });

  it('writes to German users in German, as HTML and text', async () => {
    await register('jonas@example.eu', 'de');
    const [mail] = await mailsTo('jonas@example.eu', 1);
    expect(mail.subject).toBe('Bitte bestätigen Sie Ihre E-Mail-Adresse');
    expect(mail.htmlContent).toContain('<a href="https://app.ally.example/verify-email?token=');
    expect(mail.textContent).toContain('Hallo Mia,');
    expect(mail.htmlContent).toContain('lang="de"');
  });

  it('retries 503 with backoff and delivers on the third attempt', async () => {
    brevo.failNext({ status: 503, times: 2 });
    const { user } = await register('retry@example.eu', 'en');
    await mailsTo('retry@example.eu', 1);
    const delivery = await deliveryOf('verify-email', user.id);
    expect(delivery).toMatchObject({ status: 'sent', attempts: 3 });
  });

  it('waits out a long Brevo outage (more failed attempts than any fixed number) and sends the mail once Brevo is back', async () => {
    brevo.failNext({ status: 503, times: 15 });
    const { user } = await register('outage@example.eu', 'en');
    await mailsTo('outage@example.eu', 1);
    expect(await deliveryOf('verify-email', user.id)).toMatchObject({ status: 'sent', attempts: 16 });
  });

  it('honours Retry-After on 429', async () => {
    brevo.failNext({ status: 429, times: 1, retryAfterSeconds: 1 });
    const started = Date.now();
    const { user } = await register('ratelimited@example.eu', 'en');
    await mailsTo('ratelimited@example.eu', 1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
    expect(await deliveryOf('verify-email', user.id)).toMatchObject({ status: 'sent', attempts: 2 });
  });

  it("holds back the rest of the mail while Brevo's 429 says to wait, not only the mail that met it", async () => {
    brevo.failNext({ status: 429, times: 1, retryAfterSeconds: 2 });
    const first = await register('erste.welle@example.eu', 'en');
    const limitedAt = await waitFor(async () => (/429/.test((await deliveryOf('verify-email', first.user.id))?.last_error ?? '') ? Date.now() : undefined), 'the 429');
    // Mails made meanwhile wait for the same moment instead of running into the limit.
    await register('zweite.welle@example.eu', 'en');
    const [mail] = await mailsTo('zweite.welle@example.eu', 1);
    expect(new Date(mail.receivedAt).getTime() - limitedAt).toBeGreaterThanOrEqual(1_500);
    await mailsTo('erste.welle@example.eu', 1);
  });

  it('mails once a send Brevo accepted but answered after the SDK timed out: the retry carries the same idempotency key', async () => {
    // Brevo answers only after the SDK's 15 s timeout; the worker retries a send Brevo had already taken.
    brevo.slowNext({ delayMs: 16_500 });
    const { user } = await register('slow@example.eu', 'en');
    const sent = await waitFor(async () => {
      const d = await deliveryOf('verify-email', user.id);
      return d?.status === 'sent' ? d : undefined;
    }, 'the slow mail to be sent', 30_000);
    expect(sent.attempts).toBe(2);
    const mails = brevo.mails('slow@example.eu');
    expect(mails).toHaveLength(1);
    expect(mails[0].headers).toEqual({ idempotencyKey: sent.id });
    // Brevo answers the repeated key with duplicate_parameter, not the first send's id: sent, its id unknown.
    expect({ id: sent.provider_message_id, error: sent.last_error }).toEqual({ id: null, error: expect.stringMatching(/earlier attempt/) });
  }, 45_000);

  it('does not send a mail waiting for a retry once its recipient restricted processing (Art. 18)', async () => {
    const { user } = await register('held@example.eu', 'en');
    await mailsTo('held@example.eu', 1);
    // The welcome waits 2 s for its retry (Brevo's Retry-After); the restriction arrives meanwhile.
    brevo.failNext({ status: 429, times: 1, retryAfterSeconds: 2 });
    await confirmEmail(env, user.id);
    await waitFor(async () => ((await deliveryOf('welcome', user.id))?.attempts === 1 ? true : undefined), 'the welcome waiting for its retry');
    await publishEvent(env, createEnvelope({ type: 'privacy.subject.restricted', source: 'privacy', data: { requestId: randomUUID(), userId: user.id, scope: 'all' } }));
    await waitFor(async () => ((await env.sql(`SELECT 1 FROM notify.restrictions WHERE user_id = $1`, [user.id])).length ? true : undefined), 'the restriction');
    const held = await waitFor(async () => {
      const d = await deliveryOf('welcome', user.id);
      return d?.status !== 'pending' && d?.status !== 'sending' ? d : undefined;
    }, 'the welcome to be settled');
    expect(held).toMatchObject({ status: 'suppressed', recipient: null, last_error: 'the recipient restricted, or objected to, the processing of their data' });
    expect(brevo.mails('held@example.eu').map((m) => m.subject)).toEqual(['Please confirm your email address']);
  });

  it('welcomes a user with the "EU models only" setting they have, and says nothing of it for an event that does not tell', async () => {
    const { user } = await register('euoff@example.eu', 'en');
    await rpc.call(IdentityRpc.updateSettings, { restrictToEu: false }, { actor: { userId: user.id, platformRoles: [] } });
    await confirmEmail(env, user.id);
    const welcome = await waitFor(async () => brevo.mails('euoff@example.eu').find((m) => m.subject === 'Welcome to Ally'), 'the welcome');
    expect(welcome.textContent).toContain('The "EU models only" setting is off for your account');
    expect(welcome.textContent).not.toContain('setting is on');

    // An event written before it carried the setting.
    await publishEvent(env, createEnvelope({ type: 'identity.user.verified', source: 'identity', data: { userId: randomUUID(), email: 'old.event@example.eu', firstName: 'Olaf', locale: 'en' } }));
    const [old] = await mailsTo('old.event@example.eu', 1);
    expect(old.textContent).not.toContain('EU models only');
  });

  it('waits while Brevo refuses our key or our address (401, 403: ours to mend), and sends the mail once it takes them again', async () => {
    brevo.failNext({ status: 401, times: 1 });
    brevo.failNext({ status: 403, times: 1 });
    const { user } = await register('key-rotated@example.eu', 'en');
    await mailsTo('key-rotated@example.eu', 1);
    expect(await deliveryOf('verify-email', user.id)).toMatchObject({ status: 'sent', attempts: 3 });
  });

  it('puts a mail Brevo refuses with 400 in the dead-letter state, visible in the log and the metrics', async () => {
    brevo.failNext({ status: 400, times: 1 });
    const { user } = await register('refused@example.eu', 'en');
    const dead = await waitFor(async () => {
      const d = await deliveryOf('verify-email', user.id);
      return d?.status === 'dead' ? d : undefined;
    }, 'the dead delivery');
    expect(dead).toMatchObject({ attempts: 1, recipient: null });
    expect(dead.last_error).toContain('400');
    const metrics = await (await fetch(`${notify.url}/metrics`)).text();
    expect(metrics).toMatch(/ally_notify_dead_letters_total\{template="verify-email",service="notify"\} 1/);
    expect(brevo.mails('refused@example.eu')).toHaveLength(0);
  });

  it('suppresses a bounced address for ordinary mail but still sends a password reset the user asked for', async () => {
    await expect(rpc.call(NotifyRpc.brevoWebhook, { secret: 'wrong-secret-wrong-secret', payload: { event: 'hard_bounce', email: 'bounce@example.eu' } })).rejects.toMatchObject({ status: 401 });
    expect(await env.sql(`SELECT * FROM notify.suppressions`)).toHaveLength(0);

    await expect(rpc.call(NotifyRpc.brevoWebhook, { secret: SECRET, payload: [{ event: 'hard_bounce', email: 'Bounce@example.eu' }, { event: 'opened', email: 'x@example.eu' }] })).resolves.toEqual({ applied: 1, skipped: 0 });
    // An invitation is ordinary mail: suppressed.
    const owner = await registerConfirmed('owner2@example.eu', 'en');
    const actor = { userId: owner.user.id, platformRoles: [] };
    const org = await rpc.call(IdentityRpc.createOrg, { name: 'Owner Zwei GmbH' }, { actor });
    await rpc.call(IdentityRpc.createInvitation, { orgId: org.id, email: 'bounce@example.eu', role: 'member' }, { actor });
    const suppressed = await waitFor(
      async () => (await env.sql(`SELECT * FROM notify.deliveries WHERE template = 'invitation' AND status = 'suppressed'`))[0],
      'the suppressed invitation',
    );
    expect(suppressed.recipient).toBeNull();

    // A password reset the user asked for still goes.
    await register('bounce@example.eu', 'en');
    await rpc.call(IdentityRpc.forgotPassword, { email: 'bounce@example.eu' });
    await waitFor(async () => brevo.mails('bounce@example.eu').some((m) => m.subject === 'Reset your Ally password'), 'the reset mail');
    expect(brevo.mails('bounce@example.eu').map((m) => m.subject)).not.toContain('Invitation to Owner Zwei GmbH on Ally');
  });

  it('dead-letters an event whose data breaks its contract at once, without retries', async () => {
    const js = jetstream(await env.nats());
    const envelope = createEnvelope({ type: 'identity.user.registered', source: 'identity', data: { userId: randomUUID(), email: 42 } });
    await publishEvent(env, envelope);
    const jsm = await js.jetstreamManager();
    const dead = await waitFor(
      () => jsm.streams.getMessage(deadLetterStreamName(env.prefix), { last_by_subj: env.subject('ally.dlq.notify-mail') }).catch(() => null),
      'the dead letter',
    );
    expect(dead!.json<{ id: string }>().id).toBe(envelope.id);
    expect(dead!.header.get(DLQ_HEADERS.reason)).toMatch(/^data does not match its contract/);
    expect(await env.sql(`SELECT 1 FROM notify.deliveries WHERE event_id = $1`, [envelope.id])).toHaveLength(0);
  });

  it("mails an organisation's owners about billing, and a user when their data export is ready", async () => {
    const { user } = await register('owner3@example.eu', 'en');
    const org = await rpc.call(IdentityRpc.createOrg, { name: 'Owner Drei GmbH' }, { actor: { userId: user.id, platformRoles: [] } });
    const publish = (type: string, data: unknown) => publishEvent(env, createEnvelope({ type, source: type.split('.')[0], data }));
    await publish('billing.subscription.changed', { workspace: org.id, plan: 'team', status: 'active', seats: 4, ownerEmail: null, locale: 'de' });
    await publish('billing.quota.threshold-reached', { workspace: org.id, period: '2026-11', percent: 80, ownerEmail: null, locale: 'de' });
    await publish('privacy.export.ready', { requestId: randomUUID(), userId: user.id, email: 'owner3@example.eu', firstName: 'Mia', locale: 'en', downloadUntil: '2026-12-13T17:05:19.000Z', downloadPath: '/privacy/requests/x/download' });
    const mails = await mailsTo('owner3@example.eu', 4);
    expect(mails.map((m) => m.subject).sort()).toEqual(['80% of your Ally quota used', 'Please confirm your email address', 'Your Ally subscription changed', 'Your data export is ready']);
    expect(mails.find((m) => m.subject === 'Your Ally subscription changed')!.textContent).toContain('the subscription of “Owner Drei GmbH”: plan Team, status active, 4 seats');
    expect(mails.find((m) => m.subject === '80% of your Ally quota used')!.textContent).toContain('80% of the token quota of “Owner Drei GmbH” is used');
    // The package goes at a moment, not at the end of a day.
    expect(mails.find((m) => m.subject === 'Your data export is ready')!.textContent).toContain('download it until 13 December 2026, 18:05 CET');

    // An ended subscription is not "cancelled and ends on …" any more.
    await publish('billing.subscription.changed', { workspace: org.id, plan: 'team', status: 'canceled', seats: 4, cancelAtPeriodEnd: true, currentPeriodEnd: '2027-01-06T00:00:00.000Z', ownerEmail: null, locale: 'de' });
    const [ended] = (await mailsTo('owner3@example.eu', 5)).filter((m) => m.subject === 'Your Ally subscription changed' && /ended/.test(m.textContent!));
    expect(ended.textContent).toContain('status ended, 4 seats.');
    expect(ended.textContent).not.toContain('It is cancelled');
  });

  it('erases a subject whose mail is in flight after that mail, and mails them nothing from events still in the stream', async () => {
    const { user } = await register('fenja@example.eu', 'en');
    await mailsTo('fenja@example.eu', 1);
    const exportReady = async () => {
      const envelope = createEnvelope({ type: 'privacy.export.ready', source: 'privacy', data: { requestId: randomUUID(), userId: user.id, email: 'fenja@example.eu', firstName: 'Fenja', locale: 'en', downloadUntil: new Date().toISOString(), downloadPath: '/privacy/requests/x/download' } });
      await publishEvent(env, envelope);
      return envelope.id;
    };
    // Brevo holds the next send for 800 ms: the erasure starts while it is in flight.
    brevo.slowNext({ delayMs: 800 });
    const inFlight = await exportReady();
    await waitFor(async () => ((await env.sql(`SELECT status FROM notify.deliveries WHERE event_id = $1`, [inFlight]))[0]?.status === 'sending' ? true : undefined), 'the mail in flight');
    const erased = await rpc.call(privacyRpcs('notify').erase, { userId: user.id, scope: 'all' }, { timeoutMs: 10_000 });
    expect(erased).toMatchObject({ affected: { 'delivery-log': 2 }, processorsNotified: ['brevo'] });
    expect(brevo.mails('fenja@example.eu')).toEqual([]);
    expect(await env.sql(`SELECT 1 FROM notify.deliveries WHERE user_id = $1`, [user.id])).toEqual([]);

    // An event about them published before the erasure, consumed after it, mails nobody.
    const late = await exportReady();
    // The inbox row commits with whatever deliveries the event made.
    await waitFor(async () => ((await env.sql(`SELECT 1 FROM notify.inbox WHERE event_id = $1`, [late])).length ? true : undefined), 'the late event to be consumed');
    expect(brevo.mails('fenja@example.eu')).toEqual([]);
    expect(await env.sql(`SELECT 1 FROM notify.deliveries WHERE user_id = $1`, [user.id])).toEqual([]);
  });

  it('lists the dev mailbox with links and tokens', async () => {
    const { data } = await rpc.call(NotifyRpc.devMailbox, { to: 'mia@example.eu' });
    expect(data.map((m) => m.subject)).toEqual(['Welcome to Ally', 'Please confirm your email address']);
    expect(data[1].tokens).toHaveLength(1);
  });

  it("an erasure waits for a mail in flight to the subject's address that names no account (an invitation sent before they registered), so Brevo keeps no log of it", async () => {
    const owner = await registerConfirmed(`werkstatt-${randomUUID().slice(0, 8)}@example.eu`, 'en');
    const actor = { userId: owner.user.id, platformRoles: [] as [] };
    const org = await rpc.call(IdentityRpc.createOrg, { name: 'Werkstatt Nord' }, { actor });
    const email = `late-${randomUUID().slice(0, 8)}@example.eu`;
    // Confirmed: what reached the address before the account is theirs.
    const { user } = await registerConfirmed(email, 'en');
    // Its verification and welcome out first: the send slowed below is the invitation's.
    await mailsTo(email, 2);
    brevo.slowNext({ delayMs: 2000 });
    await rpc.call(IdentityRpc.createInvitation, { orgId: org.id, email, role: 'member' }, { actor });
    const invitation = await waitFor(
      async () => (await env.sql<{ id: string }>(`SELECT id FROM notify.deliveries WHERE template = 'invitation' AND status = 'sending' AND recipient_hash = $1`, [addressHash(email)]))[0],
      'the invitation in flight',
    );
    // As the row of an invitation sent before the address had an account: no user id.
    await env.sql(`UPDATE notify.deliveries SET user_id = NULL WHERE id = $1`, [invitation.id]);
    await rpc.call(privacyRpcs('notify').erase, { userId: user.id, scope: 'all' }, { timeoutMs: 10_000 });
    // Waited for, then Brevo's logs of the address deleted: none is left, the invitation's included, also once the slowed send would have ended.
    await new Promise((r) => setTimeout(r, 2_500));
    expect(brevo.mails(email)).toEqual([]);
    expect(await env.sql(`SELECT 1 FROM notify.deliveries WHERE id = $1`, [invitation.id])).toEqual([]);
  });

  it('sends no invitation naming an inviter erased since: not one waiting for a retry, nor one from an event still in the stream', async () => {
    const inviterEmail = `ina-${randomUUID().slice(0, 8)}@example.eu`;
    const inviter = await registerConfirmed(inviterEmail, 'de');
    // Their own mails (verification, welcome) out first: the refused send below is the invitation.
    await mailsTo(inviterEmail, 2);
    const actor = { userId: inviter.user.id, platformRoles: [] as [] };
    const org = await rpc.call(IdentityRpc.createOrg, { name: 'Ina KG' }, { actor });
    const invitee = `fremd-${randomUUID().slice(0, 8)}@example.eu`;
    // Brevo refuses the first send for a while: the invitation waits for its retry.
    brevo.failNext({ status: 503, times: 1, retryAfterSeconds: 2 });
    const invitation = await rpc.call(IdentityRpc.createInvitation, { orgId: org.id, email: invitee, role: 'member' }, { actor });
    await waitFor(
      async () => ((await env.sql(`SELECT 1 FROM notify.deliveries WHERE template = 'invitation' AND status = 'pending' AND attempts > 0 AND about_user_id = $1`, [inviter.user.id])).length ? true : undefined),
      'the invitation to wait for its retry',
    );
    const created = await waitFor(
      async () =>
        (
          await env.sql<{ payload: { data: unknown; subject: unknown } }>(
            `SELECT payload FROM identity.outbox WHERE type = 'identity.invitation.created' AND payload->'data'->>'invitationId' = $1 AND sent_at IS NOT NULL`,
            [invitation.id],
          )
        )[0],
      'the invitation event marked published',
    );
    const erased = await rpc.call(privacyRpcs('notify').erase, { userId: inviter.user.id, scope: 'all' }, { timeoutMs: 10_000 });
    expect(erased.affected['delivery-log']).toBeGreaterThanOrEqual(2);
    // The same event once more (as from the stream, after the erasure): it names the inviter, so it mails nobody.
    // identity's outbox forgot the token once the event was out (it keeps its hash only): the stream's copy had one.
    expect(created.payload.data).not.toHaveProperty('token');
    const data = { ...(created.payload.data as object), token: 'a-token-as-the-stream-carried-it' };
    const again = createEnvelope({ type: 'identity.invitation.created', source: 'identity', data, subject: created.payload.subject as { userId: string } });
    await publishEvent(env, again);
    await waitFor(async () => ((await env.sql(`SELECT 1 FROM notify.inbox WHERE event_id = $1`, [again.id])).length ? true : undefined), 'the repeated event to be consumed');
    await new Promise((r) => setTimeout(r, 2_500));
    expect(brevo.mails(invitee)).toEqual([]);
    expect(await env.sql(`SELECT 1 FROM notify.deliveries WHERE about_user_id = $1 OR user_id = $1`, [inviter.user.id])).toEqual([]);
  });
});

describe('notify: a mail event is sent at once, not at the next poll', () => {
  let world: NotifyWorld;

  beforeAll(async () => {
    // A poll a minute apart: only the wake after the delivery's commit can send within the test's wait.
    world = await startNotifyWorld({ NOTIFY_POLL_MS: '60000' });
  });

  afterAll(async () => {
    await world?.close();
  });

  it('wakes the delivery worker once the delivery is committed', async () => {
    // The worker's first pass at its start finds nothing; each registration's mail comes from a wake.
    for (const name of ['erik', 'frida', 'gunnar']) {
      const email = `${name}@example.eu`;
      await world.rpc.call(IdentityRpc.register, { email, password: PASSWORD, firstName: name, lastName: 'Sofort', locale: 'de' });
      await waitFor(async () => world.brevo.mails(email).length > 0, `the mail to ${email}`, 5_000);
    }
  });
});

/** Brevo as its documentation has it: a send repeating a key it holds is refused with `duplicate_parameter`. */
describe('notify: a retry of a mail Brevo had already taken', () => {
  let world: NotifyWorld;

  beforeAll(async () => {
    world = await startNotifyWorld({ NOTIFY_POLL_MS: '50', NOTIFY_RETRY_BASE_MS: '50' });
  });

  afterAll(async () => {
    await world?.close();
  });

  it('counts it as sent, not dead: Brevo refusing the repeated key means the first attempt went', async () => {
    const { env, brevo } = world;
    const id = randomUUID();
    // The first attempt reached Brevo; its answer was lost (a timeout, a replica gone), so the row is to be sent again.
    const first = await fetch(`${brevo.apiUrl}/smtp/email`, {
      method: 'POST',
      headers: { 'api-key': 'emulator', 'content-type': 'application/json' },
      body: JSON.stringify({ sender: { email: 'no-reply@ally.eu' }, to: [{ email: 'zweimal@example.eu' }], subject: 'Willkommen', textContent: 'x', headers: { idempotencyKey: id } }),
    });
    expect(first.status).toBe(201);
    await env.sql(
      `INSERT INTO notify.deliveries (id, event_id, template, locale, recipient, recipient_hash, variables, status, attempts) VALUES ($1, $2, 'welcome', 'de', 'zweimal@example.eu', $3, '{"firstName":"Zora"}', 'pending', 1)`,
      [id, randomUUID(), addressHash('zweimal@example.eu')],
    );
    const row = await waitFor(async () => {
      const [d] = await env.sql<{ status: string; last_error: string | null; provider_message_id: string | null }>(`SELECT status, last_error, provider_message_id FROM notify.deliveries WHERE id = $1`, [id]);
      return d && d.status !== 'pending' && d.status !== 'sending' ? d : undefined;
    }, 'the retry');
    expect(row).toMatchObject({ status: 'sent', provider_message_id: null, last_error: expect.stringContaining('earlier attempt') });
    expect(brevo.mails('zweimal@example.eu')).toHaveLength(1);
  });
});
