import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { privacyRpcs } from '@ally/contracts';
import { startBrevoEmulator, type BrevoEmulator } from '@ally/emulators';
import { gatewayService } from '@ally/gateway';
import { identityService } from '@ally/identity';
import { RpcClient } from '@ally/messaging';
import { notifyService } from '@ally/notify';
import { createTestEnv, httpClient, lastEvent, waitFor, type TestEnv } from '@ally/testing';
import { expectProblem } from './problem-assertions.js';
import { notifyEnv } from './service-env.js';

const PASSWORD = 'Kastanien im Hinterhof';

/** Rectification of the address (Art. 16 GDPR): a link to the new one, and the account moves only when it is followed. */
describe('changing the address of an account', () => {
  let env: TestEnv;
  let brevo: BrevoEmulator;
  let http: ReturnType<typeof httpClient>;
  let rpc: RpcClient;

  beforeAll(async () => {
    env = await createTestEnv();
    brevo = await startBrevoEmulator();
    // Few guesses per account from places it was never used from (the test below guesses from one).
    await env.start(identityService, { LOGIN_MAX_FAILURES_PER_ACCOUNT: '3' });
    await env.start(notifyService, notifyEnv(brevo, { NOTIFY_POLL_MS: '50' }));
    // This file's sign-ins, registrations and changes come from one address within a minute.
    http = httpClient((await env.start(gatewayService, { NODE_ENV: 'development', AUTH_RATE_LIMIT_PER_MINUTE: '300' })).url);
    rpc = new RpcClient(await env.nats(), env.prefix);
    await rpc.connect();
  });

  afterAll(async () => {
    await rpc?.close();
    await env?.close();
    await brevo?.close();
  });

  /** The first link token in the newest mail to `email` whose subject matches. */
  const tokenMailedTo = (email: string, subject: RegExp) =>
    waitFor(async () => {
      const mail = brevo.mails(email).filter((m) => subject.test(m.subject ?? '')).at(-1);
      const token = mail && /token=([^\s"&<]+)/.exec(mail.textContent ?? '')?.[1];
      return token ? decodeURIComponent(token) : undefined;
    }, `a mail to ${email}`);

  it('moves the account to the new address once the link mailed to it is followed, tells the old one, and records a rectification', async () => {
    const reg = await http.post('/v1/auth/register', { email: 'greta.alt@example.eu', password: PASSWORD, firstName: 'Greta', lastName: 'Garten', locale: 'de' });
    expect(reg.status).toBe(201);
    const token: string = reg.body.accessToken;
    const userId: string = reg.body.user.id;
    expect((await http.post('/v1/auth/verify-email', { token: await tokenMailedTo('greta.alt@example.eu', /bestätigen/) })).status).toBe(204);
    await http.post('/v1/auth/register', { email: 'vergeben@example.eu', password: PASSWORD, firstName: 'Viktor', lastName: 'Vorher' });

    // The current password, the right address, and one nobody has: each refusal says what is wrong.
    expectProblem(await http.post('/v1/me/email', { email: 'greta.neu@example.eu' }, token), 400, ['password']);
    expectProblem(await http.post('/v1/me/email', { email: 'greta.neu@example.eu', password: 'nicht das Passwort' }, token), 403, ['password']);
    expectProblem(await http.post('/v1/me/email', { email: 'Greta.Alt@example.eu', password: PASSWORD }, token), 400, ['email']);
    expectProblem(await http.post('/v1/me/email', { email: 'Vergeben@example.eu', password: PASSWORD }, token), 409, ['email']);
    expectProblem(await http.post('/v1/me/email', { email: 'kein-mail', password: PASSWORD }, token), 400, ['email']);

    const asked = await http.post('/v1/me/email', { email: 'greta.neu@example.eu', password: PASSWORD }, token);
    expect(asked.status).toBe(202);
    expect(asked.body).toEqual({ email: 'greta.neu@example.eu', expiresAt: expect.any(String) });
    // Nothing moves before the link is followed: the account keeps its address and its sign-in.
    expect((await http.get('/v1/me', token)).body).toMatchObject({ email: 'greta.alt@example.eu', emailVerified: true });
    const link = await tokenMailedTo('greta.neu@example.eu', /neue E-Mail-Adresse/);
    expect((await http.post('/v1/auth/login', { email: 'greta.neu@example.eu', password: PASSWORD })).status).toBe(401);

    expect((await http.post('/v1/auth/verify-email', { token: link })).status).toBe(204);
    expect((await http.get('/v1/me', token)).body).toMatchObject({ email: 'greta.neu@example.eu', emailVerified: true });
    expect((await http.post('/v1/auth/login', { email: 'greta.neu@example.eu', password: PASSWORD })).status).toBe(200);
    expect((await http.post('/v1/auth/login', { email: 'greta.alt@example.eu', password: PASSWORD })).status).toBe(401);
    // Used once; the old address hears of the change (the new one masked); privacy records a rectification (Art. 16, 19).
    expectProblem(await http.post('/v1/auth/verify-email', { token: link }), 400, ['token']);
    const notice = await waitFor(async () => brevo.mails('greta.alt@example.eu').find((m) => /wurde geändert/.test(m.subject ?? '')), 'the notice to the old address');
    expect(notice.textContent).toContain('g***@example.eu');
    expect(notice.textContent).not.toContain('greta.neu@example.eu');
    await lastEvent(env, 'identity.user.updated', (e: { data: { userId: string; changed: string[] } }) => e.data.userId === userId && e.data.changed.includes('email'));
    // The old address is free again.
    expect((await http.post('/v1/auth/register', { email: 'greta.alt@example.eu', password: PASSWORD, firstName: 'Gerda', lastName: 'Garten' })).status).toBe(201);
  });

  it('counts wrong passwords as failed sign-ins (guesses meet the same limit), and asks an account without a password to set one first', async () => {
    const reg = await http.post('/v1/auth/register', { email: 'rate.mal@example.eu', password: PASSWORD, firstName: 'Rita', lastName: 'Rater' });
    const guess = () => http.request('POST', '/v1/me/email', { body: { email: 'rate.neu@example.eu', password: 'geraten' }, token: reg.body.accessToken, headers: { 'x-forwarded-for': '198.51.100.23' } });
    for (let i = 0; i < 3; i++) expectProblem(await guess(), 403, ['password']);
    const limited = await guess();
    expectProblem(limited, 429);
    expect(limited.headers.get('retry-after')).toBeTruthy();

    // Single sign-on only: its address comes with a password set through a link to it, not with a session alone.
    await env.sql(`UPDATE identity.users SET password_hash = NULL WHERE id = $1`, [reg.body.user.id]);
    const sso = await http.post('/v1/me/email', { email: 'rate.neu@example.eu' }, reg.body.accessToken);
    expectProblem(sso, 403);
    expect(sso.body.detail).toMatch(/single sign-on/);
  });

  it('keeps only the newest link live, and refuses a link whose address another account took meanwhile', async () => {
    const reg = await http.post('/v1/auth/register', { email: 'hans.eins@example.eu', password: PASSWORD, firstName: 'Hans', lastName: 'Hafen', locale: 'en' });
    const token: string = reg.body.accessToken;
    // Never confirmed, the address is mended by a change: the new one confirms the account and is welcomed.
    expect((await http.post('/v1/me/email', { email: 'hans.richtig@example.eu', password: PASSWORD }, token)).status).toBe(202);
    expect((await http.post('/v1/auth/verify-email', { token: await tokenMailedTo('hans.richtig@example.eu', /new email address/) })).status).toBe(204);
    expect((await http.get('/v1/me', token)).body).toMatchObject({ email: 'hans.richtig@example.eu', emailVerified: true });
    await waitFor(async () => brevo.mails('hans.richtig@example.eu').find((m) => /Welcome/.test(m.subject ?? '')), 'the welcome at the new address');
    expect((await http.post('/v1/me/email', { email: 'hans.zwei@example.eu', password: PASSWORD }, token)).status).toBe(202);
    const first = await tokenMailedTo('hans.zwei@example.eu', /new email address/);
    expect((await http.post('/v1/me/email', { email: 'hans.drei@example.eu', password: PASSWORD }, token)).status).toBe(202);
    const second = await tokenMailedTo('hans.drei@example.eu', /new email address/);
    expectProblem(await http.post('/v1/auth/verify-email', { token: first }), 400, ['token']);
    // Someone registers the address before the link is followed: the change is refused, the account keeps its own.
    expect((await http.post('/v1/auth/register', { email: 'hans.drei@example.eu', password: PASSWORD, firstName: 'Hanna', lastName: 'Drei' })).status).toBe(201);
    expectProblem(await http.post('/v1/auth/verify-email', { token: second }), 409, ['email']);
    expect((await http.get('/v1/me', token)).body.email).toBe('hans.richtig@example.eu');

    // A password reset ends a change still waiting: whoever asked for it with the old password loses the link.
    expect((await http.post('/v1/me/email', { email: 'hans.vier@example.eu', password: PASSWORD }, token)).status).toBe(202);
    const waiting = await tokenMailedTo('hans.vier@example.eu', /new email address/);
    expect((await http.post('/v1/auth/password/forgot', { email: 'hans.richtig@example.eu' })).status).toBe(202);
    const reset = await tokenMailedTo('hans.richtig@example.eu', /password/i);
    expect((await http.post('/v1/auth/password/reset', { token: reset, password: 'Ein ganz neues Passwort 9' })).status).toBe(204);
    expectProblem(await http.post('/v1/auth/verify-email', { token: waiting }), 400, ['token']);
  });

  it("has Brevo delete, at the account's erasure, its logs of mails to the addresses the account had before", async () => {
    const reg = await http.post('/v1/auth/register', { email: 'ida.frueher@example.eu', password: PASSWORD, firstName: 'Ida', lastName: 'Imker', locale: 'en' });
    const token: string = reg.body.accessToken;
    expect((await http.post('/v1/auth/verify-email', { token: await tokenMailedTo('ida.frueher@example.eu', /confirm/i) })).status).toBe(204);
    expect((await http.post('/v1/me/email', { email: 'ida.jetzt@example.eu', password: PASSWORD }, token)).status).toBe(202);
    expect((await http.post('/v1/auth/verify-email', { token: await tokenMailedTo('ida.jetzt@example.eu', /new email address/) })).status).toBe(204);
    // A change asked for and never confirmed mailed a third address.
    expect((await http.post('/v1/me/email', { email: 'ida.vertippt@example.eu', password: PASSWORD }, token)).status).toBe(202);
    await tokenMailedTo('ida.vertippt@example.eu', /new email address/);
    await waitFor(async () => brevo.mails('ida.frueher@example.eu').find((m) => /changed/.test(m.subject ?? '')), 'the notice to the old address');
    // Every mail handed to Brevo has its message id in the log before the erasure asks for it.
    await waitFor(async () => ((await env.sql(`SELECT 1 FROM notify.deliveries WHERE user_id = $1 AND status IN ('pending', 'sending')`, [reg.body.user.id])).length ? undefined : true), 'every mail sent');

    const erased = await rpc.call(privacyRpcs('notify').erase, { userId: reg.body.user.id, scope: 'all' }, { timeoutMs: 10_000 });
    expect(erased).toMatchObject({ processorsNotified: ['brevo'] });
    for (const address of ['ida.frueher@example.eu', 'ida.jetzt@example.eu', 'ida.vertippt@example.eu']) {
      expect(brevo.mails(address)).toEqual([]);
      // Deleted from Brevo's logs, not unsent: each address got its mails.
      expect(brevo.delivered(address).length).toBeGreaterThan(0);
    }
  });

  it('takes five address changes of one account a day: each mails the address it names', async () => {
    const reg = await http.post('/v1/auth/register', { email: 'viele.wechsel@example.eu', password: PASSWORD, firstName: 'Vera', lastName: 'Wechsel' });
    for (let i = 1; i <= 5; i++) expect((await http.post('/v1/me/email', { email: `wechsel.${i}@example.eu`, password: PASSWORD }, reg.body.accessToken)).status).toBe(202);
    const sixth = await http.post('/v1/me/email', { email: 'wechsel.6@example.eu', password: PASSWORD }, reg.body.accessToken);
    expectProblem(sixth, 429);
    expect(sixth.headers.get('retry-after')).toBeTruthy();
  });
});
