import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { AgeRetentionService } from '@ally/platform';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { billingService } from '@ally/billing';
import { chatService } from '@ally/chat';
import { startBrevoEmulator, startOpenAIEmulator, startStripeEmulator, type BrevoEmulator, type OpenAIEmulator, type StripeEmulator } from '@ally/emulators';
import { gatewayService } from '@ally/gateway';
import { addressHashKey, identityService, keyedAddressHash } from '@ally/identity';
import { notifyService } from '@ally/notify';
import { privacyService } from '@ally/privacy';
import { confirmEmail, createTestEnv, httpClient, lastEvent, waitFor, type RunningService, type TestEnv } from '@ally/testing';
import { everyRow } from './platform-world.js';
import { addressHash, billingEnv, chatEnv, notifyEnv } from './service-env.js';

const PASSWORD = 'Leuchtturm am Deich bei Ebbe';
const hasZip = await import('fflate').then(
  () => true,
  () => false,
);

// The same key across chat's restarts: what it wrote before must stay readable.
const CHAT_KEK = randomBytes(32).toString('base64');
const IDENTITY_KEK = randomBytes(32).toString('base64');
const CHAT_ENV = (llm: OpenAIEmulator) => chatEnv(llm, { CHAT_KEK, QUOTA_PROVIDER: 'none' });

describe('privacy through the gateway, against every real service', () => {
  let env: TestEnv;
  let stripe: StripeEmulator;
  let llm: OpenAIEmulator;
  let brevo: BrevoEmulator;
  let identity: RunningService;
  let chat: RunningService;
  let billing: RunningService;
  let http: ReturnType<typeof httpClient>;

  beforeAll(async () => {
    env = await createTestEnv();
    stripe = await startStripeEmulator();
    llm = await startOpenAIEmulator();
    brevo = await startBrevoEmulator();
    identity = await env.start(identityService, { IDENTITY_KEK });
    chat = await env.start(chatService, CHAT_ENV(llm));
    billing = await env.start(billingService, billingEnv(stripe, { METER_POLL_MS: '100' }));
    await env.start(notifyService, notifyEnv(brevo, { NOTIFY_POLL_MS: '50' }));
    await env.start(privacyService, { PRIVACY_POLL_MS: '50', PRIVACY_RETRY_BASE_MS: '100', PRIVACY_RETRY_MAX_MS: '500', PRIVACY_STEP_TIMEOUT_MS: '3000', PRIVACY_KEK: randomBytes(32).toString('base64'), RETENTION_RUNNER: 'in-process' });
    // Many people sign up and in here within a minute; the auth rate limit is another spec's subject.
    const base = (await env.start(gatewayService, { AUTH_RATE_LIMIT_PER_MINUTE: '120' })).url;
    http = httpClient(base);
    stripe.setWebhookEndpoint(`${base}/v1/webhooks/stripe`, { secret: stripe.webhookSecret });
  });

  afterAll(async () => {
    await env?.close();
    await stripe?.close();
    await llm?.close();
    await brevo?.close();
  });

  const register = async (email: string, firstName: string, lastName: string) => {
    const r = await http.post('/v1/auth/register', { email, password: PASSWORD, firstName, lastName, locale: 'de' });
    expect(r.status).toBe(201);
    // Confirmed, as an owner must be to invite.
    await confirmEmail(env, r.body.user.id);
    return r.body as { user: { id: string }; accessToken: string };
  };
  const talk = async (token: string, workspace: string, content: string) => {
    const c = (await http.post('/v1/conversations', { workspace, title: `${content.slice(0, 12)}` }, token)).body;
    expect((await http.post(`/v1/conversations/${c.id}/messages`, { content }, token)).status).toBe(201);
    return c.id as string;
  };
  const settled = (token: string, id: string, timeoutMs = 30_000) =>
    waitFor(async () => {
      const r = await http.get(`/v1/privacy/requests/${id}`, token);
      return r.body.status === 'completed' || r.body.status === 'failed' ? r.body : undefined;
    }, `privacy request ${id}`, timeoutMs);
  const complianceToken = async () => {
    const email = `cora-${randomUUID().slice(0, 8)}@ally.example`;
    await register(email, 'Cora', 'Prüfer');
    await identityService.commands!['grant-role'](identity.app, [email, 'compliance']);
    return (await http.post('/v1/auth/login', { email, password: PASSWORD })).body.accessToken as string;
  };

  it('exports everything of a user with two workspaces, a subscription and mails, and nothing of anyone else', async () => {
    const leo = await register('leonora.quastenberg@example.eu', 'Leonora', 'Quastenberg');
    const other = await register('bertram.oswaldt@example.eu', 'Bertram', 'Oswaldt');
    const org = (await http.post('/v1/orgs', { name: 'Nordsee Reederei KG' }, leo.accessToken)).body;
    // An invitation she sends names her: its event goes with her erasure too.
    expect((await http.post(`/v1/orgs/${org.id}/invitations`, { email: 'maat@example.eu', role: 'member' }, leo.accessToken)).status).toBe(201);
    await talk(leo.accessToken, 'private', 'Urlaubsplanung Helgoland');
    await talk(leo.accessToken, org.id, 'Frachtliste Nordkap');
    await talk(other.accessToken, 'private', 'Geheimrezept Rote Grütze');
    const checkout = await http.post('/v1/billing/checkout', { workspace: 'private', plan: 'team' }, leo.accessToken);
    expect(checkout.status).toBe(200);
    // A freelancer's private plan: she gives her VAT ID at Checkout.
    stripe.completeCheckout(checkout.body.url.split('/').pop(), { taxId: { type: 'eu_vat', value: 'DE987654321' } });
    await stripe.flushWebhooks();
    await waitFor(async () => ((await http.get(`/v1/billing/subscription?workspace=private`, leo.accessToken)).body.status === 'active' ? true : undefined), 'an active subscription');
    await waitFor(async () => ((await http.get(`/v1/billing/invoices?workspace=private`, leo.accessToken)).body.data?.length ? true : undefined), 'an invoice');
    // An invitation names the address, not the account: its event and its mail's log row go with the erasure too.
    const invitingOrg = (await http.post('/v1/orgs', { name: 'Grützwerk Oswaldt' }, other.accessToken)).body;
    expect((await http.post(`/v1/orgs/${invitingOrg.id}/invitations`, { email: 'leonora.quastenberg@example.eu', role: 'member' }, other.accessToken)).status).toBe(201);
    await waitFor(async () => (brevo.mails('leonora.quastenberg@example.eu').length >= 2 ? true : undefined), 'the verification and invitation mails');

    const created = await http.post('/v1/privacy/requests', { type: 'access' }, leo.accessToken);
    expect(created.status).toBe(202);
    expect(created.body).toMatchObject({ type: 'access', status: 'received', dueAt: expect.any(String) });
    const done = await settled(leo.accessToken, created.body.id);
    expect(done.status).toBe('completed');
    expect(done.steps.map((s: { service: string; status: string }) => [s.service, s.status]).sort()).toEqual([
      ['billing', 'completed'],
      ['chat', 'completed'],
      ['identity', 'completed'],
      ['notify', 'completed'],
    ]);

    const downloadsRecorded = async () => (await env.sql(`SELECT 1 FROM privacy.audit_log WHERE request_id = $1 AND action = 'export.downloaded'`, [created.body.id])).length;
    const json = await http.get(`/v1/privacy/requests/${created.body.id}/download?format=json`, leo.accessToken);
    expect(json.status).toBe(200);
    expect(json.headers.get('content-type')).toContain('application/json');
    expect(await downloadsRecorded()).toBe(1);
    // HEAD: the headers the download gets, and no download on record.
    const head = await http.request('HEAD', `/v1/privacy/requests/${created.body.id}/download?format=json`, { token: leo.accessToken });
    expect(head.status).toBe(200);
    for (const header of ['content-type', 'content-length', 'x-content-sha256']) expect(head.headers.get(header)).toBe(json.headers.get(header));
    expect(await downloadsRecorded()).toBe(1);
    const files = json.body.files;
    const text = JSON.stringify(files);
    expect(text).toContain('Urlaubsplanung Helgoland');
    expect(text).toContain('Frachtliste Nordkap');
    expect(files['data/identity.json'].categories.account.email).toBe('leonora.quastenberg@example.eu');
    expect(files['data/billing.json'].categories.contract.subscriptions[0]).toMatchObject({ plan: 'team', status: 'active' });
    expect(files['data/billing.json'].categories.invoices.length).toBeGreaterThan(0);
    expect(files['data/notify.json'].categories['delivery-log'].length).toBeGreaterThan(0);
    expect(text).not.toContain('Rote Grütze');
    expect(text).not.toContain('bertram');
    expect(text).not.toContain(other.user.id);
    expect(files['information.json'].automatedDecisionMaking).toMatch(/^none/);
    // Invitations she sent (without the invitee's address: another person's) and received; the Stripe customer; full invoices.
    const invitations = files['data/identity.json'].categories.memberships.invitations;
    expect(invitations.sent).toEqual([expect.objectContaining({ org_id: org.id, role: 'member' })]);
    expect(JSON.stringify(invitations.sent)).not.toContain('maat@example.eu');
    expect(invitations.received).toEqual([expect.objectContaining({ org_id: invitingOrg.id })]);
    // With what Stripe holds of her as processor: the name and billing address Checkout collected.
    expect(files['data/billing.json'].categories.contract.customers).toEqual([
      expect.objectContaining({
        stripe_customer_id: expect.stringMatching(/^cus_/),
        heldByStripe: expect.objectContaining({
          name: 'Erika Mustermann',
          address: expect.objectContaining({ city: 'Berlin', country: 'DE' }),
          taxIds: [{ type: 'eu_vat', value: 'DE987654321' }],
        }),
      }),
    ]);
    expect(files['data/billing.json'].categories.invoices[0]).toMatchObject({ amount_paid: expect.anything(), customer_ref: expect.stringMatching(/^cus_/) });

    // An export of the organisation's workspace keeps to it: none of her private contract, chats or keys.
    const ofOrg = await http.post('/v1/privacy/requests', { type: 'access', scope: org.id }, leo.accessToken);
    expect((await settled(leo.accessToken, ofOrg.body.id)).status).toBe('completed');
    const orgFiles = (await http.get(`/v1/privacy/requests/${ofOrg.body.id}/download?format=json`, leo.accessToken)).body.files;
    expect(JSON.stringify(orgFiles)).toContain('Frachtliste Nordkap');
    expect(JSON.stringify(orgFiles)).not.toContain('Urlaubsplanung Helgoland');
    expect(orgFiles['data/billing.json'].categories.contract).toMatchObject({ subscriptions: [], customers: [] });
    expect(orgFiles['data/billing.json'].categories.invoices).toEqual([]);
    expect(orgFiles['data/identity.json'].categories.memberships.memberships).toEqual([expect.objectContaining({ org_id: org.id, role: 'owner' })]);
    // Her requests about the whole account and this workspace, not the private workspace's.
    const ofPrivate = await http.post('/v1/privacy/requests', { type: 'access', scope: 'private' }, leo.accessToken);
    expect((await settled(leo.accessToken, ofPrivate.body.id)).status).toBe('completed');
    const requestsIn = (files: any) => files['data/privacy.json'].categories['data-subject-requests'].map((r: { id: string }) => r.id);
    expect(requestsIn(orgFiles)).toEqual([created.body.id, ofOrg.body.id]);
    const privateFiles = (await http.get(`/v1/privacy/requests/${ofPrivate.body.id}/download?format=json`, leo.accessToken)).body.files;
    expect(requestsIn(privateFiles)).toEqual([created.body.id, ofPrivate.body.id]);
    expect(JSON.stringify(privateFiles)).not.toContain(org.id);

    if (hasZip) {
      const zip = await http.request('GET', `/v1/privacy/requests/${created.body.id}/download`, { token: leo.accessToken });
      expect(zip.status).toBe(200);
      expect(zip.headers.get('content-type')).toBe('application/zip');
      expect(zip.headers.get('content-disposition')).toContain('.zip');
    }
    // Another user cannot see it, let alone download it.
    expect((await http.get(`/v1/privacy/requests/${created.body.id}`, other.accessToken)).status).toBe(404);
    expect((await http.get(`/v1/privacy/requests/${created.body.id}/download`, other.accessToken)).status).toBe(404);
    const ready = await lastEvent(env, 'privacy.export.ready', (e: any) => e.data.requestId === created.body.id);
    expect(ready.data).toMatchObject({ email: 'leonora.quastenberg@example.eu', firstName: 'Leonora' });

    // Erasure: every service, identity last; then no trace in any schema, and the login fails.
    const erasure = await http.post('/v1/privacy/requests', { type: 'erasure' }, leo.accessToken);
    expect(erasure.status).toBe(202);
    const cora = await complianceToken();
    const erased = await waitFor(async () => {
      const list = await http.get('/v1/admin/privacy/requests?status=completed', cora);
      return list.body.data.find((r: { id: string }) => r.id === erasure.body.id);
    }, 'the erasure to complete', 30_000);
    expect(erased.processorNotices.map((n: { processor: string }) => n.processor).sort()).toEqual(['brevo', 'stripe']);
    // billing deleted the private workspace's customer at Stripe (Art. 17 / 19).
    expect(erased.processorNotices.find((n: { processor: string }) => n.processor === 'stripe').status).toBe('confirmed');
    expect(stripe.requests({ method: 'DELETE', path: /^\/v1\/customers\/cus_/ })).toHaveLength(1);
    // notify had Brevo delete its logs of the address.
    expect(erased.processorNotices.find((n: { processor: string }) => n.processor === 'brevo').status).toBe('confirmed');
    expect(brevo.mails('leonora.quastenberg@example.eu')).toEqual([]);
    // She was told (Art. 12(3)) while her address was still known: one last mail, delivered though its log is gone too.
    const farewell = brevo.delivered('leonora.quastenberg@example.eu').filter((m) => m.subject === 'Ihr Ally-Konto wird gelöscht');
    expect(farewell).toHaveLength(1);
    expect(farewell[0].textContent).toContain('Hallo Leonora');
    expect(farewell[0].textContent).toContain('Dies ist die letzte E-Mail');
    // The development mailbox is an inbox: it still shows that mail.
    const mailbox = (await http.get('/v1/dev/mailbox?to=leonora.quastenberg@example.eu')).body.data as { subject: string }[];
    expect(mailbox.map((m) => m.subject)).toContain('Ihr Ally-Konto wird gelöscht');
    // Her access token would outlive the account by up to 15 minutes: its session ended with the account, so every route refuses it,
    // billing's and privacy's too, which do not know accounts.
    for (const gone of [
      await http.post('/v1/billing/checkout', { workspace: 'private', plan: 'team' }, leo.accessToken),
      await http.get('/v1/billing/subscription?workspace=private', leo.accessToken),
      await http.post('/v1/privacy/requests', { type: 'access' }, leo.accessToken),
    ]) {
      expect({ status: gone.status, detail: gone.body.detail }).toEqual({ status: 401, detail: expect.stringMatching(/session has ended .*account erased/) });
    }

    const dump = await everyRow(env);
    // What notify's log and identity's login audit key an address by (and the plain hashes of releases before):
    // anyone with the key, or the address, could follow it.
    const address = 'leonora.quastenberg@example.eu';
    const hashes = [addressHash(address), keyedAddressHash(addressHashKey(Buffer.from(IDENTITY_KEK, 'base64')), address), createHash('sha256').update(address).digest('hex'), createHash('sha256').update(address).digest('base64url')];
    const traces = Object.entries(dump)
      .filter(([, rows]) => [leo.user.id, address, ...hashes, 'Leonora', 'Quastenberg'].some((needle) => rows.includes(needle)))
      .map(([table]) => table);
    // Each erase step also drops the published events that named the subject; what remains in an
    // outbox is the erasure's own news (identity.user.deleted, member.removed), carrying the id only.
    expect(traces.filter((t) => !t.endsWith('.outbox'))).toEqual([]);
    for (const [table, rows] of Object.entries(dump).filter(([t]) => t.endsWith('.outbox'))) {
      for (const needle of [address, ...hashes, 'Leonora', 'Quastenberg']) expect({ table, found: rows.includes(needle) }).toEqual({ table, found: false });
    }
    expect(dump['privacy.outbox']).not.toContain(leo.user.id);
    // The login fails. (A failed sign-in is a new record, kept under the address's keyed hash for throttling, as for any address.)
    expect((await http.post('/v1/auth/login', { email: 'leonora.quastenberg@example.eu', password: PASSWORD })).status).toBe(401);
    expect(dump['billing.invoices']).toContain('"restricted":true');
    expect(dump['billing.invoices']).toContain('"hosted_invoice_url":null');
  });

  it('finishes an erasure when chat was down in the middle of it and comes back', async () => {
    const tom = await register('tom.wanderer@example.eu', 'Tom', 'Wanderer');
    await talk(tom.accessToken, 'private', 'Routenplanung Zugspitze');
    await env.stop(chat);
    const erasure = (await http.post('/v1/privacy/requests', { type: 'erasure' }, tom.accessToken)).body;
    const cora = await complianceToken();
    await waitFor(async () => {
      const list = await http.get('/v1/admin/privacy/requests?status=in_progress', cora);
      const r = list.body.data.find((x: { id: string }) => x.id === erasure.id);
      return r?.steps.find((s: { service: string; attempts: number; lastError: string | null }) => s.service === 'chat' && s.attempts >= 2 && s.lastError) ? r : undefined;
    }, 'chat to have failed twice', 20_000);
    chat = await env.start(chatService, CHAT_ENV(llm));
    const done = await waitFor(async () => {
      const list = await http.get('/v1/admin/privacy/requests?status=completed', cora);
      return list.body.data.find((x: { id: string }) => x.id === erasure.id);
    }, 'the erasure to complete after chat came back', 30_000);
    expect(done.steps.find((s: { service: string }) => s.service === 'chat').result['chat-history']).toBeGreaterThan(0);
    expect(await env.sql(`SELECT 1 FROM chat.conversations WHERE user_id = $1`, [tom.user.id])).toEqual([]);
  });

  it('keeps /v1/admin/privacy/* to compliance and serves consents without a login', async () => {
    const ann = await register('ann.nichtadmin@example.eu', 'Ann', 'Nichtadmin');
    for (const path of ['/v1/admin/privacy/requests', '/v1/admin/privacy/retention-policies', '/v1/admin/privacy/processing-activities']) {
      expect((await http.get(path, ann.accessToken)).status).toBe(403);
      expect((await http.get(path)).status).toBe(401);
    }
    const cora = await complianceToken();
    const csv = await http.request('GET', '/v1/admin/privacy/processing-activities?format=csv', { token: cora });
    expect(csv.status).toBe(200);
    expect(csv.headers.get('content-type')).toContain('text/csv');
    expect(csv.body).toContain('Sendinblue GmbH (Brevo)');
    const policies = await http.get('/v1/admin/privacy/retention-policies?limit=100', cora);
    expect(policies.body.data.find((p: { category: string }) => p.category === 'login-audit').retentionDays).toBe(30);

    const hold = await http.post('/v1/admin/privacy/legal-holds', { userId: ann.user.id, reason: 'Rechtsstreit Az. 3 O 17/26' }, cora);
    expect(hold.status).toBe(201);
    const run = await http.post('/v1/admin/privacy/retention-runs', { dryRun: true }, cora);
    expect(run.status).toBe(202);
    const report = await waitFor(async () => {
      const r = await http.get(`/v1/admin/privacy/retention-runs/${run.body.id}`, cora);
      return r.body.finishedAt ? r.body : undefined;
    }, 'the dry run');
    expect(report).toMatchObject({ dryRun: true, heldUsers: 1 });
    expect(report.results).toContainEqual({ service: 'privacy', category: 'consent-records', affected: 0 });
    expect((await http.delete(`/v1/admin/privacy/legal-holds/${hold.body.id}`, cora)).body.releasedAt).toEqual(expect.any(String));

    // Rectification happens in identity; privacy records it. No processor holds a copy to correct (Art. 19):
    // Stripe gets no name from Ally (Checkout asks the customer), Brevo keeps no contact, only logs of mails sent.
    expect((await http.patch('/v1/me', { lastName: 'Nichtadmin-Berg' }, ann.accessToken)).status).toBe(200);
    const rectification = await waitFor(async () => {
      const r = await http.get('/v1/privacy/requests', ann.accessToken);
      return r.body.data.find((x: { type: string }) => x.type === 'rectification');
    }, 'the rectification record');
    expect(rectification).toMatchObject({ status: 'completed', processorNotices: [] });

    const subjectId = `cookie-${randomUUID()}`;
    const given = await http.post('/v1/privacy/consents', { subjectId, purposes: { analytics: true }, policyVersion: '2024-09-18' });
    expect(given.status).toBe(201);
    expect((await http.get(`/v1/privacy/consents/${subjectId}`)).body.current[0]).toMatchObject({ purpose: 'analytics', granted: true });
    const withdrawn = await http.delete(`/v1/privacy/consents/${subjectId}`);
    expect(withdrawn.status).toBe(200);
    expect(withdrawn.body.current[0].granted).toBe(false);
    expect(withdrawn.body.history).toHaveLength(2);
  });

  it('mails "export ready" for an export of one workspace too, though its package has no account section', async () => {
    const email = 'ines.teilweise@example.eu';
    const ines = (await http.post('/v1/auth/register', { email, password: PASSWORD, firstName: 'Ines', lastName: 'Teilweise', locale: 'en' })).body;
    await talk(ines.accessToken, 'private', 'Nur das Private');
    const created = await http.post('/v1/privacy/requests', { type: 'portability', scope: 'private' }, ines.accessToken);
    expect(created.status).toBe(202);
    expect((await settled(ines.accessToken, created.body.id)).status).toBe('completed');
    const ready = await waitFor(async () => brevo.mails(email).find((m) => m.subject === 'Your data export is ready'), 'the export-ready mail');
    expect(ready.textContent).toContain('Hello Ines');
    expect(ready.textContent).toContain(`/privacy/requests/${created.body.id}/download`); // the page that signs in and saves it
  });

  it('exports a usage ledger and a login audit far larger than one NATS message, page by page', async () => {
    const email = 'viola.vielnutzer@example.eu';
    const viola = await register(email, 'Viola', 'Vielnutzer');
    // Months of answers and a wave of failed sign-ins: each list alone outgrows one answer of its service.
    await env.sql(
      `INSERT INTO billing.ledger (message_id, workspace, user_id, model, deployment, prompt_tokens, completion_tokens, tokens, cost, period, created_at)
       SELECT gen_random_uuid(), 'private:' || $1, $1::uuid, 'gpt-4o-mini', 'gpt-4o-mini@azure-swedencentral', 120, 480, 600, 0.000360, '2026-11', now() - make_interval(mins => i)
         FROM generate_series(1, 6000) AS i`,
      [viola.user.id],
    );
    await env.sql(
      `INSERT INTO identity.login_audit (user_id, ip, succeeded, method, occurred_at) SELECT $1, '198.51.100.' || (i % 250), false, 'password', now() - make_interval(secs => i) FROM generate_series(1, 12000) AS i`,
      [viola.user.id],
    );
    const created = await http.post('/v1/privacy/requests', { type: 'access' }, viola.accessToken);
    expect((await settled(viola.accessToken, created.body.id, 60_000)).status).toBe('completed');
    const files = (await http.get(`/v1/privacy/requests/${created.body.id}/download?format=json`, viola.accessToken)).body.files;
    const ledger = files['data/billing.json'].categories['usage-ledger'] as { message_id: string }[];
    expect(ledger).toHaveLength(6000);
    expect(new Set(ledger.map((r) => r.message_id)).size).toBe(6000);
    expect(files['data/identity.json'].categories['login-audit'].length).toBeGreaterThanOrEqual(12000);
  });

  it('tells the subject when the erasure of one workspace is done, naming the organisation', async () => {
    const email = 'edda.einzeln@example.eu';
    const edda = await register(email, 'Edda', 'Einzeln');
    // A member of someone else's organisation, which outlives her leaving it (an only member's would be dissolved).
    const owner = await register('olga.oberwerft@example.eu', 'Olga', 'Oberwerft');
    const org = (await http.post('/v1/orgs', { name: 'Kutterwerft Edda KG' }, owner.accessToken)).body;
    expect((await http.post(`/v1/orgs/${org.id}/invitations`, { email, role: 'member' }, owner.accessToken)).status).toBe(201);
    const invited = await lastEvent(env, 'identity.invitation.created', (e: any) => e.data.orgId === org.id);
    expect((await http.post('/v1/invitations/accept', { token: invited.data.token }, edda.accessToken)).status).toBe(200);
    await talk(edda.accessToken, org.id, 'Werftplan Herbst');
    for (const [scope, subject] of [
      [org.id, 'Ihre Daten bei Kutterwerft Edda KG sind gelöscht'],
      ['private', 'Die Daten Ihres privaten Arbeitsbereichs sind gelöscht'],
    ]) {
      const erasure = await http.post('/v1/privacy/requests', { type: 'erasure', scope }, edda.accessToken);
      expect(erasure.status).toBe(202);
      expect((await settled(edda.accessToken, erasure.body.id)).status).toBe('completed');
      const told = await waitFor(async () => brevo.mails(email).find((m) => m.subject === subject), `the mail that the erasure of ${scope} is done`);
      expect(told.textContent).toContain('Hallo Edda');
      expect(told.textContent).toContain('Ihr Konto und Ihre übrigen Arbeitsbereiche bleiben unverändert');
      expect(told.textContent).toContain(`Anfrage ${erasure.body.id}.`);
    }
    // The account stays: she still signs in.
    expect((await http.post('/v1/auth/login', { email, password: PASSWORD })).status).toBe(200);
  });

  it('stops chat processing for a subject who asked for restriction (Art. 18)', async () => {
    const rita = await register('rita.ruhig@example.eu', 'Rita', 'Ruhig');
    const conversation = await talk(rita.accessToken, 'private', 'Vor der Einschränkung');
    expect((await http.post('/v1/privacy/requests', { type: 'restriction' }, rita.accessToken)).status).toBe(202);
    const refused = await waitFor(async () => {
      const r = await http.post(`/v1/conversations/${conversation}/messages`, { content: 'Noch da?' }, rita.accessToken);
      return r.status === 403 ? r : undefined;
    }, 'chat to learn of the restriction');
    expect(refused.body.detail).toMatch(/Art\. 18/);
    // Stored data stays readable to its owner.
    expect((await http.get(`/v1/conversations/${conversation}`, rita.accessToken)).status).toBe(200);

    // Compliance lifts it (audited); chat resumes.
    const request = (await http.get('/v1/privacy/requests', rita.accessToken)).body.data.find((r: { type: string }) => r.type === 'restriction');
    const cora = await complianceToken();
    expect((await http.post(`/v1/admin/privacy/requests/${request.id}/decision`, { decision: 'uphold', reason: 'wrong kind' }, cora)).status).toBe(409);
    expect((await http.post(`/v1/admin/privacy/requests/${request.id}/decision`, { decision: 'lift', reason: 'the accuracy check is done' }, rita.accessToken)).status).toBe(403);
    const reason = 'Wir haben Ihre Angaben geprüft; sie sind richtig.';
    const lift = await http.post(`/v1/admin/privacy/requests/${request.id}/decision`, { decision: 'lift', reason }, cora);
    expect(lift.status).toBe(200);
    expect(lift.body.decision).toMatchObject({ outcome: 'lift', reason, tookEffectAt: null });
    // Told first (Art. 18(3) GDPR): the mail names the date and the reason while the restriction still stands.
    const mail = await waitFor(async () => brevo.mails('rita.ruhig@example.eu').find((m) => m.subject === 'Ihre Einschränkung der Verarbeitung wird aufgehoben'), 'the notice of the lift');
    expect(mail.textContent).toContain(reason);
    expect(mail.textContent).toMatch(/\d{2}:\d{2} MES?Z/);
    expect((await http.post(`/v1/conversations/${conversation}/messages`, { content: 'Schon wieder da?' }, rita.accessToken)).status).toBe(403);
    const seen = (await http.get(`/v1/privacy/requests/${request.id}`, rita.accessToken)).body;
    expect(seen.decision).toMatchObject({ outcome: 'lift', reason, takesEffectAt: lift.body.decision.takesEffectAt });
    // The 72 hours' notice runs out.
    await env.sql(`UPDATE privacy.requests SET takes_effect_at = now() WHERE id = $1`, [request.id]);
    await waitFor(async () => (await http.post(`/v1/conversations/${conversation}/messages`, { content: 'Wieder da' }, rita.accessToken)).status === 201, 'chat to resume');
    expect((await http.get(`/v1/privacy/requests/${request.id}`, rita.accessToken)).body.decision.tookEffectAt).toEqual(expect.any(String));
  });

  it('a restriction of the account (Art. 18) also pauses the login audit and the mails the subject may do without, until it is lifted', async () => {
    const email = 'rolf.ruhe@example.eu';
    const rolf = (await http.post('/v1/auth/register', { email, password: PASSWORD, firstName: 'Rolf', lastName: 'Ruhe', locale: 'de' })).body;
    const restriction = (await http.post('/v1/privacy/requests', { type: 'restriction' }, rolf.accessToken)).body;
    // Each step completes once its service acted on the restriction, not once it was told: at that moment the rows are there.
    const steps = await waitFor(async () => {
      const { steps } = (await http.get(`/v1/privacy/requests/${restriction.id}`, rolf.accessToken)).body;
      return steps.every((s: { status: string }) => s.status === 'completed') ? steps : undefined;
    }, 'every service to act on it');
    expect(steps.map((s: { service: string }) => s.service).sort()).toEqual(['billing', 'chat', 'identity', 'notify']);
    for (const service of ['identity', 'notify', 'chat']) expect(await env.sql(`SELECT 1 FROM ${service}.restrictions WHERE request_id = $1`, [restriction.id])).toHaveLength(1);
    // Sign-ins are no longer tied to him; one from a new place still brings the security mail.
    expect((await http.post('/v1/auth/login', { email, password: PASSWORD })).status).toBe(200);
    expect(await env.sql(`SELECT 1 FROM identity.login_audit WHERE user_id = $1`, [rolf.user.id])).toEqual([]);
    expect((await http.request('POST', '/v1/auth/login', { body: { email, password: PASSWORD }, headers: { 'x-forwarded-for': '198.51.100.77' } })).status).toBe(200);
    await waitFor(async () => brevo.mails(email).find((m) => m.subject === 'Neue Anmeldung bei Ally'), 'the new sign-in mail');
    // The welcome after confirming the address stays unsent; a reset link he asks for still goes.
    const verification = await waitFor(async () => brevo.mails(email).find((m) => m.subject === 'Bitte bestätigen Sie Ihre E-Mail-Adresse'), 'the verification mail');
    const token = /token=([^\s"&<]+)/.exec(verification.textContent!)![1];
    expect((await http.post('/v1/auth/verify-email', { token: decodeURIComponent(token) })).status).toBe(204);
    expect((await http.post('/v1/auth/password/forgot', { email })).status).toBe(202);
    await waitFor(async () => brevo.mails(email).find((m) => /Passwort/.test(m.subject ?? '') && !/bestätigen/.test(m.subject ?? '')), 'the reset mail');
    expect(brevo.mails(email).map((m) => m.subject)).not.toContain('Willkommen bei Ally');
    // An invitation to his address is a mail to him he may do without; one to an address without an account still goes.
    const ida = await register('ida.inviter@example.eu', 'Ida', 'Inviter');
    const org = (await http.post('/v1/orgs', { name: 'Ruhe GmbH' }, ida.accessToken)).body;
    expect((await http.post(`/v1/orgs/${org.id}/invitations`, { email, role: 'member' }, ida.accessToken)).status).toBe(201);
    expect((await http.post(`/v1/orgs/${org.id}/invitations`, { email: 'nora.neu@example.eu', role: 'member' }, ida.accessToken)).status).toBe(201);
    await waitFor(async () => brevo.mails('nora.neu@example.eu').find((m) => m.subject === 'Einladung zu Ruhe GmbH auf Ally'), 'the invitation to the address without an account');
    expect(brevo.mails(email).map((m) => m.subject)).not.toContain('Einladung zu Ruhe GmbH auf Ally');

    // Lifted (after its notice), the audit names him again.
    const cora = await complianceToken();
    expect((await http.post(`/v1/admin/privacy/requests/${restriction.id}/decision`, { decision: 'lift', reason: 'Die Prüfung ist abgeschlossen.' }, cora)).status).toBe(200);
    await env.sql(`UPDATE privacy.requests SET takes_effect_at = now() WHERE id = $1`, [restriction.id]);
    await waitFor(async () => ((await env.sql(`SELECT 1 FROM identity.restrictions WHERE user_id = $1 AND lifted_at IS NOT NULL`, [rolf.user.id])).length ? true : undefined), 'the lift to reach identity');
    expect((await http.post('/v1/auth/login', { email, password: PASSWORD })).status).toBe(200);
    expect(await env.sql(`SELECT 1 FROM identity.login_audit WHERE user_id = $1`, [rolf.user.id])).toHaveLength(1);
  });

  it('an upheld objection (Art. 21) ends the login audit of the subject', async () => {
    const olaf = await register('olaf.ohne@example.eu', 'Olaf', 'Ohne');
    await http.post('/v1/auth/login', { email: 'olaf.ohne@example.eu', password: PASSWORD });
    expect(await env.sql(`SELECT 1 FROM identity.login_audit WHERE user_id = $1`, [olaf.user.id])).not.toEqual([]);
    const objection = (await http.post('/v1/privacy/requests', { type: 'objection' }, olaf.accessToken)).body;
    const cora = await complianceToken();
    // Compliance finds it among those awaiting a decision; until decided it is in progress, not completed.
    const awaiting = await waitFor(async () => {
      const page = (await http.get('/v1/admin/privacy/requests?awaiting=decision&limit=100', cora)).body;
      return page.data.find((r: { id: string; status: string }) => r.id === objection.id && r.status === 'in_progress');
    }, 'the objection to await its decision');
    expect(awaiting).toMatchObject({ type: 'objection', completedAt: null, decision: null });
    const upheld = await http.post(`/v1/admin/privacy/requests/${objection.id}/decision`, { decision: 'uphold', reason: 'Es gibt keine zwingenden Gründe.' }, cora);
    expect(upheld.status).toBe(200);
    expect(upheld.body).toMatchObject({ status: 'completed', decision: { outcome: 'uphold', reason: 'Es gibt keine zwingenden Gründe.' } });
    // Through privacy's outbox, notify and Brevo (the event comes right after the stop's, which notify's consumer only acknowledges).
    const mail = await waitFor(async () => brevo.mails('olaf.ohne@example.eu').find((m) => m.subject === 'Ihrem Widerspruch wurde stattgegeben'), 'the mail telling the outcome');
    expect(mail.textContent).toContain('Es gibt keine zwingenden Gründe.');
    await waitFor(async () => (await env.sql(`SELECT 1 FROM identity.login_audit WHERE user_id = $1`, [olaf.user.id])).length === 0, 'the audit rows to go');
    // So do the IP and user agent his sessions were opened with; sessions opened since keep none.
    await waitFor(async () => (await env.sql(`SELECT 1 FROM identity.sessions WHERE user_id = $1 AND (ip IS NOT NULL OR user_agent IS NOT NULL)`, [olaf.user.id])).length === 0, "the sessions' IPs to go");
    expect((await http.post('/v1/auth/login', { email: 'olaf.ohne@example.eu', password: PASSWORD })).status).toBe(200);
    expect(await env.sql(`SELECT 1 FROM identity.login_audit WHERE user_id = $1`, [olaf.user.id])).toEqual([]);
    expect(await env.sql(`SELECT 1 FROM identity.sessions WHERE user_id = $1 AND ip IS NOT NULL`, [olaf.user.id])).toEqual([]);
    // Mail rests on legitimate interest too: one he may do without (an invitation to his address) is not sent.
    await waitFor(async () => ((await env.sql(`SELECT 1 FROM notify.restrictions WHERE request_id = $1 AND lifted_at IS NULL`, [objection.id])).length ? true : undefined), 'notify to hear of it');
    const ilse = await register('ilse.inviter@example.eu', 'Ilse', 'Inviter');
    const org = (await http.post('/v1/orgs', { name: 'Widerspruch GmbH' }, ilse.accessToken)).body;
    expect((await http.post(`/v1/orgs/${org.id}/invitations`, { email: 'olaf.ohne@example.eu', role: 'member' }, ilse.accessToken)).status).toBe(201);
    expect((await http.post(`/v1/orgs/${org.id}/invitations`, { email: 'otto.offen@example.eu', role: 'member' }, ilse.accessToken)).status).toBe(201);
    await waitFor(async () => brevo.mails('otto.offen@example.eu').find((m) => m.subject === 'Einladung zu Widerspruch GmbH auf Ally'), 'the invitation to the address without an account');
    expect(brevo.mails('olaf.ohne@example.eu').map((m) => m.subject)).not.toContain('Einladung zu Widerspruch GmbH auf Ally');
    expect((await http.post(`/v1/admin/privacy/requests/${objection.id}/decision`, { decision: 'reject', reason: 'again' }, cora)).status).toBe(409);
    // Both events name what the objection reaches alike; legal holds (legal claims) are not among it.
    const categoriesOf = async (type: string) => (await lastEvent<{ requestId: string; categories: string[] }>(env, type, (e) => e.data.requestId === objection.id)).data.categories;
    const objected = await categoriesOf('privacy.subject.objected');
    expect(await categoriesOf('privacy.subject.objection-upheld')).toEqual(objected);
    expect(objected).toEqual(expect.arrayContaining(['login-audit', 'delivery-log', 'suppression-list']));
    expect(objected).not.toContain('legal-holds');
  });

  it("an upheld objection of a subject restricted in one workspace only deletes the login audit: a workspace's restriction keeps that workspace's rows, not the account's", async () => {
    const email = 'rita.teilweise@example.eu';
    const rita = await register(email, 'Rita', 'Teilweise');
    const cora = await complianceToken();
    expect((await http.post('/v1/privacy/requests', { type: 'restriction', scope: 'private' }, rita.accessToken)).status).toBe(202);
    const objection = (await http.post('/v1/privacy/requests', { type: 'objection' }, rita.accessToken)).body;
    await waitFor(async () => ((await http.get(`/v1/privacy/requests/${objection.id}`, rita.accessToken)).body.status === 'in_progress' ? true : undefined), 'the objection to await its decision');
    expect((await http.post(`/v1/admin/privacy/requests/${objection.id}/decision`, { decision: 'uphold', reason: 'Kein zwingender Grund.' }, cora)).status).toBe(200);
    const upheld = await lastEvent<{ requestId: string; keep?: boolean }>(env, 'privacy.subject.objection-upheld', (e) => e.data.requestId === objection.id);
    expect(upheld.data.keep).toBe(false);
    await waitFor(async () => ((await env.sql(`SELECT 1 FROM identity.login_audit WHERE user_id = $1`, [rita.user.id])).length === 0 ? true : undefined), 'the audit rows to go');
  });

  it('an upheld objection of a subject under a legal hold stops the login audit but deletes nothing of it, and nobody decides their own request', async () => {
    const email = 'hanno.halt@example.eu';
    const hanno = await register(email, 'Hanno', 'Halt');
    await http.post('/v1/auth/login', { email, password: PASSWORD });
    const cora = await complianceToken();
    expect((await http.post('/v1/admin/privacy/legal-holds', { userId: hanno.user.id, reason: 'Klage anhängig' }, cora)).status).toBe(201);
    const objection = (await http.post('/v1/privacy/requests', { type: 'objection' }, hanno.accessToken)).body;
    await waitFor(async () => ((await http.get(`/v1/privacy/requests/${objection.id}`, hanno.accessToken)).body.status === 'in_progress' ? true : undefined), 'the objection to await its decision');
    expect((await http.post(`/v1/admin/privacy/requests/${objection.id}/decision`, { decision: 'uphold', reason: 'Kein zwingender Grund.' }, cora)).status).toBe(200);
    const upheld = await lastEvent<{ requestId: string; keep?: boolean }>(env, 'privacy.subject.objection-upheld', (e) => e.data.requestId === objection.id);
    expect(upheld.data.keep).toBe(true);
    await waitFor(async () => ((await env.sql(`SELECT login_audit_objected FROM identity.users WHERE id = $1`, [hanno.user.id]))[0]?.login_audit_objected ? true : undefined), 'identity to stop the audit');
    expect(await env.sql(`SELECT 1 FROM identity.login_audit WHERE user_id = $1`, [hanno.user.id])).not.toEqual([]);

    // A compliance officer's own objection is decided by someone else.
    const own = (await http.post('/v1/privacy/requests', { type: 'objection' }, cora)).body;
    await waitFor(async () => ((await http.get(`/v1/privacy/requests/${own.id}`, cora)).body.status === 'in_progress' ? true : undefined), 'her objection to await its decision');
    const self = await http.post(`/v1/admin/privacy/requests/${own.id}/decision`, { decision: 'reject', reason: 'Ich entscheide selbst.' }, cora);
    expect({ status: self.status, detail: self.body.detail }).toEqual({ status: 403, detail: expect.stringContaining('your own request') });
  });

  it('pauses the login audit from the objection on (Art. 21(1)) and resumes it when compliance rejects the objection for compelling grounds', async () => {
    const email = 'paulina.pause@example.eu';
    const paulina = await register(email, 'Paulina', 'Pause');
    const signIns = async () => (await env.sql(`SELECT 1 FROM identity.login_audit WHERE user_id = $1`, [paulina.user.id])).length;
    await http.post('/v1/auth/login', { email, password: PASSWORD });
    const before = await signIns();
    expect(before).toBeGreaterThan(0);
    const objection = (await http.post('/v1/privacy/requests', { type: 'objection' }, paulina.accessToken)).body;
    await waitFor(async () => (await env.sql(`SELECT 1 FROM identity.objections WHERE request_id = $1 AND decided_at IS NULL`, [objection.id])).length > 0 || undefined, 'identity to pause the audit');
    expect((await http.post('/v1/auth/login', { email, password: PASSWORD })).status).toBe(200);
    // Not tied to her while the objection is undecided; what was recorded before stays until a decision.
    expect(await signIns()).toBe(before);

    const cora = await complianceToken();
    await waitFor(async () => (await http.get(`/v1/privacy/requests/${objection.id}`, paulina.accessToken)).body.status === 'in_progress' || undefined, 'the objection to await its decision');
    const reason = 'Die Protokolle schützen Ihr Konto vor Übernahme; sie werden nach 30 Tagen gelöscht.';
    expect((await http.post(`/v1/admin/privacy/requests/${objection.id}/decision`, { decision: 'reject', reason }, cora)).status).toBe(200);
    const mail = await waitFor(async () => brevo.mails(email).find((m) => m.subject === 'Entscheidung über Ihren Widerspruch'), 'the mail telling the outcome');
    expect(mail.textContent).toContain(reason);
    await waitFor(async () => (await env.sql(`SELECT 1 FROM identity.objections WHERE request_id = $1 AND decided_at IS NOT NULL`, [objection.id])).length > 0 || undefined, 'identity to resume the audit');
    expect((await http.post('/v1/auth/login', { email, password: PASSWORD })).status).toBe(200);
    expect(await signIns()).toBe(before + 1);
    // Mail she may do without resumes too (paused from the objection on).
    await waitFor(async () => (await env.sql(`SELECT 1 FROM notify.restrictions WHERE request_id = $1 AND lifted_at IS NOT NULL`, [objection.id])).length > 0 || undefined, 'notify to resume her mail');
  });

  it('takes data-subject requests only from a signed-in person, not an API key, and refuses a forged cursor with 400', async () => {
    const ida = await register('ida.schluessel@example.eu', 'Ida', 'Schlüssel');
    const key = (await http.post('/v1/me/api-keys', { name: 'script', workspace: 'private' }, ida.accessToken)).body.key;
    for (const type of ['access', 'erasure']) expect((await http.post('/v1/privacy/requests', { type }, key)).status).toBe(403);
    expect((await http.get('/v1/privacy/requests', key)).status).toBe(403);
    expect(await env.sql(`SELECT 1 FROM privacy.requests WHERE user_id = $1`, [ida.user.id])).toEqual([]);

    const forged = Buffer.from(`1|${'a'.repeat(36)}`).toString('base64url');
    const res = await http.get(`/v1/privacy/requests?cursor=${forged}`, ida.accessToken);
    expect(res.status).toBe(400);
    expect(res.body.errors).toEqual([expect.objectContaining({ field: 'cursor' })]);
  });

  it('refuses chat for a subject from the moment chat erased them, while the erasure still waits for other services', async () => {
    const paula = await register('paula.spaet@example.eu', 'Paula', 'Spät');
    const conversationId = (await http.post('/v1/conversations', { workspace: 'private' }, paula.accessToken)).body.id;
    expect((await http.post(`/v1/conversations/${conversationId}/messages`, { content: 'Vorher' }, paula.accessToken)).status).toBe(201);
    await env.stop(billing); // a slow service of the first phase keeps identity's step (and the login) waiting
    const erasure = (await http.post('/v1/privacy/requests', { type: 'erasure' }, paula.accessToken)).body;
    await waitFor(async () => (await env.sql(`SELECT 1 FROM privacy.request_steps WHERE request_id = $1 AND service = 'chat' AND status = 'completed'`, [erasure.id])).length > 0, "chat's step");
    const again = await http.post('/v1/conversations', { workspace: 'private', title: 'Nachher' }, paula.accessToken);
    expect(again.status).toBe(410);
    // However long identity's step waits (here chat's mark is dated two days back), chat keeps refusing the subject,
    // still signed in, until the account is gone: what they wrote meanwhile nobody would erase.
    const marks = () => env.sql<{ deleted: boolean }>(`SELECT account_deleted_at IS NOT NULL AS deleted FROM chat.erased_subjects WHERE erased_at < now() - interval '1 day'`);
    await env.sql(`UPDATE chat.erased_subjects SET erased_at = now() - interval '2 days' WHERE account_deleted_at IS NULL`);
    await chat.app.get(AgeRetentionService).purgeExpired();
    expect(await marks()).toContainEqual({ deleted: false });
    expect((await http.post('/v1/conversations', { workspace: 'private', title: 'Zwei Tage später' }, paula.accessToken)).status).toBe(410);
    billing = await env.start(billingService, billingEnv(stripe, { METER_POLL_MS: '100' }));
    await waitFor(async () => (await env.sql(`SELECT 1 FROM privacy.requests WHERE id = $1 AND status = 'completed'`, [erasure.id])).length > 0, 'the erasure', 30_000);
    for (const table of ['conversations', 'messages', 'data_keys']) expect(await env.sql(`SELECT 1 FROM chat.${table} WHERE user_id = $1`, [paula.user.id])).toEqual([]);
    // identity's `user.deleted` starts the mark's last day.
    await waitFor(async () => ((await marks()).every((m) => m.deleted) ? true : undefined), "the mark to count from the account's deletion");
  });
});
