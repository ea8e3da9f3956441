import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { mergeExportPages, privacyRpcs, type PrivacyExport } from '@ally/contracts';
import { startBrevoEmulator, type BrevoEmulator } from '@ally/emulators';
import { gatewayService } from '@ally/gateway';
import { identityService } from '@ally/identity';
import { notifyService } from '@ally/notify';
import { RpcClient } from '@ally/messaging';
import { createTestEnv, httpClient, waitFor, type TestEnv } from '@ally/testing';
import { addressHash, notifyEnv } from './service-env.js';

const SECRET = 'e2e-brevo-webhook-secret';

describe('mail as a new user meets it: through the gateway, the dev mailbox and Brevo webhooks', () => {
  let env: TestEnv;
  let brevo: BrevoEmulator;
  let http: ReturnType<typeof httpClient>;

  beforeAll(async () => {
    env = await createTestEnv();
    brevo = await startBrevoEmulator();
    await env.start(identityService);
    await env.start(notifyService, notifyEnv(brevo, { BREVO_WEBHOOK_SECRET: SECRET, NOTIFY_POLL_MS: '50', NODE_ENV: 'development' }));
    http = httpClient((await env.start(gatewayService, { NODE_ENV: 'development' })).url);
  });

  afterAll(async () => {
    await env?.close();
    await brevo?.close();
  });

  /** The dev mailbox of an address once it holds a mail. */
  const mailboxOf = (email: string, what: string) =>
    waitFor(async () => {
      const res = await http.get(`/v1/dev/mailbox?to=${email}`);
      return res.body?.data?.length ? res.body : undefined;
    }, what);

  it('registering produces one verification mail in the dev mailbox, in the user language, whose link verifies the account', async () => {
    const reg = await http.post('/v1/auth/register', { email: 'sofia@example.eu', password: 'Olivenhain bei Valencia', firstName: 'Sofía', lastName: 'García', locale: 'en' });
    expect(reg.status).toBe(201);
    const box = await mailboxOf('sofia@example.eu', 'the verification mail');
    expect(box.data).toHaveLength(1);
    expect(box.data[0]).toMatchObject({ subject: 'Please confirm your email address', to: ['sofia@example.eu'] });
    expect((await http.post('/v1/auth/verify-email', { token: box.data[0].tokens[0] })).status).toBe(204);
    expect((await http.get('/v1/me', reg.body.accessToken)).body.emailVerified).toBe(true);
    // A filter it cannot read is a 400, not every mail (with every token) unfiltered.
    for (const query of ['to[]=sofia@example.eu', 'TO=sofia@example.eu', 'to=sofia@example.eu&to=x@example.eu', 'to=kein-mail']) {
      expect((await http.get(`/v1/dev/mailbox?${query}`)).status).toBe(400);
    }
  });

  it('a bounce webhook suppresses the address; a bad secret answers 401 and changes nothing', async () => {
    const bounce = { event: 'hard_bounce', email: 'gone@example.eu', 'message-id': '<x@smtp-relay.mailin.fr>' };
    const bad = await http.request('POST', '/v1/webhooks/brevo', { body: bounce, headers: { authorization: 'Bearer not-the-secret' } });
    expect(bad.status).toBe(401);
    expect(bad.headers.get('content-type')).toContain('application/problem+json');
    expect(await env.sql(`SELECT * FROM notify.suppressions`)).toHaveLength(0);

    const ok = await http.request('POST', `/v1/webhooks/brevo?token=${SECRET}`, { body: bounce });
    expect(ok.status).toBe(200);
    expect(await env.sql(`SELECT reason FROM notify.suppressions`)).toEqual([{ reason: 'hard_bounce' }]);
  });

  it('keeps a keyed hash of an address, never the plain one a list of addresses reverses; a suppression kept under the plain hash before still holds, and is rekeyed', async () => {
    const plain = (email: string) => createHash('sha256').update(email).digest('hex');
    await env.sql(`INSERT INTO notify.suppressions (recipient_hash, reason) VALUES ($1, 'complaint')`, [plain('complained-before@example.eu')]);
    const reg = await http.post('/v1/auth/register', { email: 'complained-before@example.eu', password: 'Olivenhain bei Valencia', firstName: 'Carla', lastName: 'Benz', locale: 'en' });
    expect(reg.status).toBe(201);
    const box = await mailboxOf('complained-before@example.eu', 'the verification mail (required: it goes to a suppressed address too)');
    expect((await http.post('/v1/auth/verify-email', { token: box.data[0].tokens[0] })).status).toBe(204);
    // The welcome mail is one they may do without: the suppression from before this release holds.
    const welcome = await waitFor(
      async () => (await env.sql<{ status: string; recipient_hash: string }>(`SELECT status, recipient_hash FROM notify.deliveries WHERE user_id = $1 AND template = 'welcome' AND status NOT IN ('pending', 'sending')`, [reg.body.user.id]))[0],
      'the welcome mail to be decided',
    );
    expect(welcome).toEqual({ status: 'suppressed', recipient_hash: addressHash('complained-before@example.eu') });
    expect(await env.sql(`SELECT reason FROM notify.suppressions WHERE recipient_hash = $1`, [addressHash('complained-before@example.eu')])).toEqual([{ reason: 'complaint' }]);
    for (const table of ['suppressions', 'deliveries']) {
      expect(await env.sql(`SELECT 1 FROM notify.${table} WHERE recipient_hash = $1`, [plain('complained-before@example.eu')])).toEqual([]);
    }
  });

  it("exports a long delivery log in pages by keyset, with the mails under the plain hash of releases before, and erases them all", async () => {
    const email = 'viel-post@example.eu';
    const reg = await http.post('/v1/auth/register', { email, password: 'Olivenhain bei Valencia', firstName: 'Vera', lastName: 'Post', locale: 'en' });
    expect(reg.status).toBe(201);
    const userId: string = reg.body.user.id;
    const box = await mailboxOf(email, 'the verification mail');
    // The address is theirs (what was mailed to it before the account is theirs only then).
    expect((await http.post('/v1/auth/verify-email', { token: box.data[0].tokens[0] })).status).toBe(204);
    // A year of mails, five to a microsecond at times; and an invitation to the address before it had an account,
    // logged by a release before under the plain hash.
    await env.sql(
      `INSERT INTO notify.deliveries (id, event_id, template, locale, user_id, recipient_hash, status, created_at, sent_at)
       SELECT gen_random_uuid(), gen_random_uuid(), 'quota-threshold', 'en', $1, $2, 'sent', timestamptz '2026-01-01 08:00:00+00' + (i / 5) * interval '1 microsecond' + (i % 4) * interval '1 day', now()
         FROM generate_series(1, 6000) AS i`,
      [userId, addressHash(email)],
    );
    await env.sql(
      `INSERT INTO notify.deliveries (id, event_id, template, locale, recipient_hash, status, created_at, sent_at)
       VALUES (gen_random_uuid(), gen_random_uuid(), 'invitation', 'en', $1, 'sent', '2025-12-24 12:00:00+00', now())`,
      [createHash('sha256').update(email).digest('hex')],
    );
    const rpc = new RpcClient(await env.nats(), env.prefix);
    await rpc.connect();
    try {
      const pages: PrivacyExport[] = [];
      for (let page: number | string | undefined = 0; page !== undefined; page = pages.at(-1)!.nextPage) {
        pages.push(await rpc.call(privacyRpcs('notify').export, { userId, scope: 'all', page }));
      }
      expect(pages.length).toBeGreaterThan(1);
      const log = mergeExportPages(pages).categories['delivery-log'] as { template: string; created_at: string }[];
      const kept = await env.sql<{ n: number }>(`SELECT count(*)::int AS n FROM notify.deliveries WHERE user_id = $1 OR recipient_hash = ANY($2::text[])`, [
        userId,
        [addressHash(email), createHash('sha256').update(email).digest('hex')],
      ]);
      expect(log).toHaveLength(kept[0].n);
      expect(log[0].template).toBe('invitation');
      const times = log.map((r) => new Date(r.created_at).getTime());
      expect(times).toEqual([...times].sort((a, b) => a - b));

      await rpc.call(privacyRpcs('notify').erase, { userId, scope: 'all' });
      expect(await env.sql(`SELECT template FROM notify.deliveries WHERE user_id = $1 OR recipient_hash = ANY($2::text[])`, [userId, [addressHash(email), createHash('sha256').update(email).digest('hex')]])).toEqual([]);
    } finally {
      await rpc.close();
    }
  });

  it('gives and erases an account whose address is not confirmed only the mails that name it, not those to the address before it', async () => {
    const email = 'neu-hier@example.eu';
    // An invitation to the address before anyone registered it: its owner's.
    await env.sql(
      `INSERT INTO notify.deliveries (id, event_id, template, locale, recipient_hash, status, created_at, sent_at)
       VALUES (gen_random_uuid(), gen_random_uuid(), 'invitation', 'en', $1, 'sent', now() - interval '1 day', now())`,
      [addressHash(email)],
    );
    // Someone registers the address and never confirms it.
    const reg = await http.post('/v1/auth/register', { email, password: 'Olivenhain bei Valencia', firstName: 'Sam', lastName: 'Squat', locale: 'en' });
    expect(reg.status).toBe(201);
    const userId: string = reg.body.user.id;
    await mailboxOf(email, 'the verification mail');
    await waitFor(async () => brevo.mails(email).length > 0 || undefined, "Brevo's log of the verification mail");
    const rpc = new RpcClient(await env.nats(), env.prefix);
    await rpc.connect();
    try {
      const exported = await rpc.call(privacyRpcs('notify').export, { userId, scope: 'all' });
      const templates = (exported.categories['delivery-log'] as { template: string }[]).map((r) => r.template);
      expect(templates).toContain('verify-email');
      expect(templates).not.toContain('invitation');
      await rpc.call(privacyRpcs('notify').erase, { userId, scope: 'all' });
      expect(await env.sql(`SELECT template FROM notify.deliveries WHERE recipient_hash = $1 AND user_id IS NULL`, [addressHash(email)])).toEqual([{ template: 'invitation' }]);
      expect(await env.sql(`SELECT 1 FROM notify.deliveries WHERE user_id = $1`, [userId])).toEqual([]);
    } finally {
      await rpc.close();
    }
  });

  it('a soft bounce is temporary: it suppresses nothing and a later delivered wins; a hard bounce stays final', async () => {
    const sentTo = async (email: string) => {
      const reg = await http.post('/v1/auth/register', { email, password: 'Olivenhain bei Valencia', firstName: 'Sofía', lastName: 'García', locale: 'en' });
      expect(reg.status).toBe(201);
      return waitFor(async () => (await env.sql(`SELECT id, provider_message_id FROM notify.deliveries WHERE user_id = $1 AND status = 'sent'`, [reg.body.user.id]))[0], `the mail to ${email}`);
    };
    const report = async (event: string, email: string, messageId: string) =>
      expect((await http.request('POST', `/v1/webhooks/brevo?token=${SECRET}`, { body: { event, email, 'message-id': messageId } })).status).toBe(200);
    const statusOf = async (id: string) => (await env.sql(`SELECT status FROM notify.deliveries WHERE id = $1`, [id]))[0].status;
    const suppressions = (email: string) => env.sql(`SELECT reason FROM notify.suppressions WHERE recipient_hash = $1`, [addressHash(email)]);

    const full = await sentTo('mailbox-full@example.eu');
    await report('soft_bounce', 'mailbox-full@example.eu', full.provider_message_id);
    expect(await suppressions('mailbox-full@example.eu')).toEqual([]);
    expect(await statusOf(full.id)).toBe('sent');
    await report('delivered', 'mailbox-full@example.eu', full.provider_message_id);
    expect(await statusOf(full.id)).toBe('delivered');

    const gone = await sentTo('left-the-company@example.eu');
    await report('hard_bounce', 'left-the-company@example.eu', gone.provider_message_id);
    await report('delivered', 'left-the-company@example.eu', gone.provider_message_id);
    expect(await statusOf(gone.id)).toBe('bounced');
    expect(await suppressions('left-the-company@example.eu')).toEqual([{ reason: 'hard_bounce' }]);
  });

  it('a malformed webhook event alone is a 400 naming the field; in a batch it is skipped and the others applied (Brevo drops a batch it gets a 4xx for)', async () => {
    const single = await http.request('POST', `/v1/webhooks/brevo?token=${SECRET}`, { body: { event: 5, email: 'someone@example.eu' } });
    expect(single.status).toBe(400);
    expect(single.headers.get('content-type')).toContain('application/problem+json');
    expect(single.body.errors.map((e: { field: string }) => e.field)).toEqual(['event']);
    const batch = await http.request('POST', `/v1/webhooks/brevo?token=${SECRET}`, { body: [{ event: 'hard_bounce', email: 'ok@example.eu' }, { event: 'hard_bounce', email: 'nope' }] });
    expect({ status: batch.status, body: batch.body }).toEqual({ status: 200, body: { applied: 1, skipped: 1 } });
    expect(await env.sql(`SELECT reason FROM notify.suppressions WHERE recipient_hash = $1`, [addressHash('ok@example.eu')])).toEqual([{ reason: 'hard_bounce' }]);
    // Not a batch at all, or a larger one than Brevo sends: a 400.
    expect((await http.request('POST', `/v1/webhooks/brevo?token=${SECRET}`, { body: Array(1001).fill({ event: 'spam', email: 'x@example.eu' }) })).status).toBe(400);
  });

  it('answers a webhook notify cannot take now (its database failing) with a 429, which Brevo retries, and takes it when asked again', async () => {
    const complaint = { event: 'spam', email: 'complains@example.eu' };
    await env.sql(`CREATE FUNCTION notify.test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'could not extend file: No space left on device'; END $$`);
    await env.sql(`CREATE TRIGGER test_refuse BEFORE INSERT ON notify.suppressions FOR EACH ROW EXECUTE FUNCTION notify.test_refuse()`);
    try {
      const refused = await http.request('POST', `/v1/webhooks/brevo?token=${SECRET}`, { body: complaint });
      expect({ status: refused.status, retryAfter: refused.headers.get('retry-after') }).toEqual({ status: 429, retryAfter: '60' });
    } finally {
      await env.sql(`DROP TRIGGER test_refuse ON notify.suppressions`);
      await env.sql(`DROP FUNCTION notify.test_refuse()`);
    }
    expect((await http.request('POST', `/v1/webhooks/brevo?token=${SECRET}`, { body: complaint })).body).toEqual({ applied: 1, skipped: 0 });
    expect(await env.sql(`SELECT reason FROM notify.suppressions WHERE recipient_hash = $1`, [addressHash('complains@example.eu')])).toEqual([{ reason: 'spam' }]);
  });

  it('writes German mails in German: the invited role and the time of a new sign-in read as words, not codes', async () => {
    const owner = await http.post('/v1/auth/register', { email: 'henrike@example.eu', password: 'Lindenblüten am Neckar', firstName: 'Henrike', lastName: 'Albrecht', locale: 'de' });
    // Confirmed first, with the link of the verification mail, as an owner must be to invite.
    const verification = await waitFor(async () => (await http.get('/v1/dev/mailbox?to=henrike@example.eu')).body?.data?.find((m: { tokens: string[] }) => m.tokens.length), 'the verification mail');
    expect((await http.post('/v1/auth/verify-email', { token: verification.tokens[0] })).status).toBe(204);
    const org = (await http.post('/v1/orgs', { name: 'Albrecht Bau GmbH' }, owner.body.accessToken)).body;
    for (const [email, role] of [['jakob@example.eu', 'member'], ['klara@example.eu', 'admin']]) {
      expect((await http.post(`/v1/orgs/${org.id}/invitations`, { email, role }, owner.body.accessToken)).status).toBe(201);
    }
    const invitation = async (email: string) =>
      waitFor(async () => (await http.get(`/v1/dev/mailbox?to=${email}`)).body?.data?.find((m: { subject: string }) => m.subject.startsWith('Einladung')), `the invitation to ${email}`);
    expect((await invitation('jakob@example.eu')).textContent).toContain('auf Ally beizutreten (Rolle: Mitglied)');
    expect((await invitation('klara@example.eu')).textContent).toContain('auf Ally beizutreten (Rolle: Administrator)');

    // The first login comes from the address the account was registered from: that is no new device.
    expect((await http.post('/v1/auth/login', { email: 'henrike@example.eu', password: 'Lindenblüten am Neckar' })).status).toBe(200);
    const fromElsewhere = { body: { email: 'henrike@example.eu', password: 'Lindenblüten am Neckar' }, headers: { 'x-forwarded-for': '198.51.100.77' } };
    expect((await http.request('POST', '/v1/auth/login', fromElsewhere)).status).toBe(200);
    const signIns = async (): Promise<{ textContent: string; receivedAt: string }[]> =>
      (await http.get('/v1/dev/mailbox?to=henrike@example.eu')).body?.data?.filter((m: { subject: string }) => m.subject === 'Neue Anmeldung bei Ally') ?? [];
    const signIn = await waitFor(async () => (await signIns()).find((m) => m.textContent.includes('(198.51.100.77)')), 'the new sign-in mail');
    expect(await signIns()).toHaveLength(1);
    const day = new Intl.DateTimeFormat('de-DE', { day: 'numeric', month: 'long', year: 'numeric', timeZone: 'Europe/Berlin' }).format(new Date(signIn.receivedAt));
    expect(signIn.textContent).toMatch(new RegExp(`Ihr Konto wurde am ${day}, \\d{2}:\\d{2} MES?Z von einer neuen IP-Adresse`));
    expect(signIn.textContent).not.toMatch(/\d{4}-\d{2}-\d{2}T/);
  });

  it('a webhook event with a NUL character (which Postgres text cannot hold), or without an email address, is a 400, not a 500', async () => {
    for (const event of [
      { event: 'delivered', email: 'gone@example.eu', 'message-id': '<x\u0000@smtp-relay.mailin.fr>' },
      { event: 'hard\u0000bounce', email: 'nul@example.eu' },
      { event: 'hard_bounce', email: 'nope' },
      { event: 'hard_bounce' },
    ]) {
      const res = await http.request('POST', `/v1/webhooks/brevo?token=${SECRET}`, { body: event });
      expect(res.status).toBe(400);
      expect(res.headers.get('content-type')).toContain('application/problem+json');
    }
    expect(await env.sql(`SELECT count(*)::int AS n FROM notify.suppressions WHERE reason LIKE 'hard%bounce' AND reason <> 'hard_bounce'`)).toEqual([{ n: 0 }]);
  });
});

describe('the dev mailbox in production', () => {
  let env: TestEnv;

  beforeAll(async () => {
    env = await createTestEnv();
  });

  afterAll(async () => {
    await env?.close();
  });

  it('does not exist', async () => {
    const http = httpClient((await env.start(gatewayService, { NODE_ENV: 'production' })).url);
    const res = await http.get('/v1/dev/mailbox?to=a@example.eu');
    expect(res.status).toBe(404);
  });
});
