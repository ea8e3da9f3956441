import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { runInNewContext } from 'node:vm';
import { gatewayService } from '@ally/gateway';
import { identityService } from '@ally/identity';
import { createTestEnv, httpClient, lastEvent, waitFor, type TestEnv } from '@ally/testing';
import { startPlatformWorld, type PlatformWorld } from './platform-world.js';
import { expectProblem } from './problem-assertions.js';

const PASSWORD = 'Kraniche über dem Feld';

/**
 * Runs the page's script as a browser would after `path` was opened, and sends its form (unless `click` is false: a
 * mail scanner's visit); resolves with what the page finally says, and what it saved. `prefix`: the path a proxy in
 * front of the gateway serves it under (the browser sees it, the proxy strips it).
 */
async function openPageOf(base: string, script: string, path: string, form: Record<string, string> = {}, saved: { name?: string; size?: number; address?: string; calls?: string[] } = {}, click = true, prefix = ''): Promise<string> {
  const url = new URL(path, base);
  saved.address = `${prefix}${url.pathname}${url.search}`;
  const result = { textContent: '', style: {} as Record<string, string> };
  let submit: ((event: { preventDefault(): void }) => Promise<void>) | undefined;
  const button = { disabled: false };
  const html = await (await fetch(url)).text();
  const page = html.match(/data-page="(\w+)"/)![1];
  const basePath = html.match(/data-base="([^"]*)"/)![1];
  runInNewContext(script, {
    URLSearchParams,
    location: { search: url.search, pathname: `${prefix}${url.pathname}` },
    history: { replaceState: (_state: unknown, _title: string, address: string) => (saved.address = address) },
    FormData: class {
      constructor() {
        return Object.entries(form);
      }
    },
    fetch: (p: string, init: RequestInit) => {
      (saved.calls ??= []).push(p);
      return fetch(new URL(prefix && p.startsWith(prefix) ? p.slice(prefix.length) : p, base), init);
    },
    URL: { createObjectURL: (blob: Blob) => ((saved.size = blob.size), 'blob:x') },
    document: {
      body: { dataset: { page, base: basePath } },
      getElementById: () => result,
      createElement: () => ({ click() {}, set download(name: string) { saved.name = name; } }),
      querySelector: (selector: string) => (selector === 'form' ? { addEventListener: (_: string, f: typeof submit) => (submit = f), querySelector: () => button } : null),
    },
  });
  if (submit && click) await submit({ preventDefault() {} });
  // A page without a form acts on opening; give its call time to answer.
  for (let i = 0; i < 100 && !result.textContent; i++) await new Promise((r) => setTimeout(r, 20));
  return result.textContent;
}

/**
 * The links in Ally's mails open pages the gateway serves; their script calls
 * the public API. The script runs here against the real gateway, with just
 * enough of a page around it (the result line, the form and its values).
 */
describe('the pages mail links open', () => {
  let env: TestEnv;
  let base: string;
  let http: ReturnType<typeof httpClient>;
  let script: string;

  beforeAll(async () => {
    env = await createTestEnv();
    await env.start(identityService);
    base = (await env.start(gatewayService)).url;
    http = httpClient(base);
    script = await (await fetch(`${base}/web/app.js`)).text();
  });

  afterAll(async () => {
    await env?.close();
  });

  const openPage = (path: string, form: Record<string, string> = {}) => openPageOf(base, script, path, form);


  it('serves every page as HTML with its script, and the script itself', async () => {
    for (const path of ['/', '/verify-email', '/reset-password', '/forgot-password', '/invitations/accept', '/billing', '/billing/success', '/billing/cancelled']) {
      const res = await fetch(`${base}${path}?token=x`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/html/);
      expect(await res.text()).toContain('<script src="/web/app.js" defer></script>');
      expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
    }
    const js = await fetch(`${base}/web/app.js`);
    expect(js.headers.get('content-type')).toMatch(/^text\/javascript/);
    // Forms go by POST and only through the script (their button is off until it runs): a password never lands in an address.
    const reset = await (await fetch(`${base}/reset-password?token=x`)).text();
    expect(reset).toMatch(/<form method="post">.*<button disabled>/);
    expect(reset).toContain('minlength="12" maxlength="256"');
    expect(reset).toContain('<span lang="en">');
    // No request for a favicon that is not there; a trailing slash is the same page, not the API's 404.
    expect(reset).toContain('<link rel="icon" href="data:,">');
    for (const [path, to] of [['/billing/', '/billing'], ['/verify-email/?token=x', '/verify-email?token=x'], ['/privacy/requests/abc/download/', '/privacy/requests/abc/download'], ['/docs/', '/docs']]) {
      const res = await fetch(`${base}${path}`, { redirect: 'manual' });
      // The query may hold a link's token: the redirect is not kept in a cache.
      expect({ path, status: res.status, location: res.headers.get('location'), cache: res.headers.get('cache-control') }).toEqual({ path, status: 308, location: to, cache: 'no-store' });
    }
    // Served over plain HTTP (PUBLIC_BASE_URL http://…), the policy does not send the script to an HTTPS port.
    const policy = (await fetch(`${base}/reset-password?token=x`)).headers.get('content-security-policy')!;
    expect(policy).not.toContain('upgrade-insecure-requests');
    // Stricter than the API's (its OpenAPI UI needs inline scripts): the pages' one script and one style, by hash.
    expect(policy).toContain("script-src 'self';");
    expect(policy).not.toContain('unsafe-inline');
    const style = /<style>(.*)<\/style>/.exec(reset)![1];
    expect(policy).toContain(`style-src 'sha256-${createHash('sha256').update(style).digest('base64')}'`);
    expect(policy).toContain("frame-ancestors 'self'");
    expect((await fetch(`${base}/docs`)).headers.get('content-security-policy')).toContain("'unsafe-inline'");
  });

  it('verifies an address from the link in its mail when its button is clicked (not when the page merely opens), and says why a used link does not', async () => {
    const registered = (await http.post('/v1/auth/register', { email: 'web@example.eu', password: PASSWORD, firstName: 'Wera', lastName: 'Web' })).body;
    const event = await lastEvent<{ userId: string; verificationToken: string }>(env, 'identity.user.registered', (e) => e.data.userId === registered.user.id);
    const link = `/verify-email?token=${encodeURIComponent(event.data.verificationToken)}`;
    // Opened (its script run) without the click, as a mail scanner opens links: nothing is confirmed. The token
    // leaves the address as the page reads it, so it stays in no browser history.
    const opened: { address?: string } = {};
    await openPageOf(base, script, link, {}, opened, false);
    expect(opened.address).toBe('/verify-email');
    expect((await http.get('/v1/me', registered.accessToken)).body.emailVerified).toBe(false);
    expect(await openPage(link)).toMatch(/bestätigt.*confirmed/);
    expect((await http.get('/v1/me', registered.accessToken)).body.emailVerified).toBe(true);
    expect(await openPage(link)).toBe(
      'Dieser Link gilt nicht (mehr). Haben Sie ihn schon einmal benutzt, ist Ihre Adresse bestätigt: melden Sie sich einfach an. · This link is not (or no longer) valid. If you used it before, your address is confirmed: just sign in.',
    );
  });

  it('resets a password, sends the reset link, and accepts an invitation after signing in', async () => {
    const owner = (await http.post('/v1/auth/register', { email: 'owner@example.eu', password: PASSWORD, firstName: 'Olaf', lastName: 'Web' })).body;
    expect(await openPage('/forgot-password', { email: 'owner@example.eu' })).toMatch(/link is on its way/);
    const reset = await lastEvent<{ userId: string; resetToken: string; validForSeconds: number }>(env, 'identity.password.reset-requested', (e) => e.data.userId === owner.user.id);
    // The mail states the link's lifetime from the event (RESET_TOKEN_TTL_SECONDS), not a fixed phrase.
    expect(reset.data.validForSeconds).toBe(3600);
    const resetLink = `/reset-password?token=${encodeURIComponent(reset.data.resetToken)}`;
    expect(await openPage(resetLink, { password: 'x'.repeat(257) })).toBe('Das Passwort darf höchstens 256 Zeichen haben. · The password may have at most 256 characters.');
    expect(await openPage(resetLink, { password: 'Ein ganz neues Passwort' })).toMatch(/password is changed/);
    expect((await http.post('/v1/auth/login', { email: 'owner@example.eu', password: 'Ein ganz neues Passwort' })).status).toBe(200);

    const token = (await http.post('/v1/auth/login', { email: 'owner@example.eu', password: 'Ein ganz neues Passwort' })).body.accessToken;
    const org = (await http.post('/v1/orgs', { name: 'Webstuhl GmbH' }, token)).body;
    const invited = await http.post(`/v1/orgs/${org.id}/invitations`, { email: 'guest@example.eu', role: 'member' }, token);
    await http.post('/v1/auth/register', { email: 'guest@example.eu', password: PASSWORD, firstName: 'Greta', lastName: 'Gast' });
    const invitation = await lastEvent<{ invitationId: string; token: string }>(env, 'identity.invitation.created', (e) => e.data.invitationId === invited.body.id);
    const link = `/invitations/accept?token=${encodeURIComponent(invitation.data.token)}`;
    expect(await openPage(link, { email: 'guest@example.eu', password: 'not the password' })).toBe('E-Mail-Adresse oder Passwort ist falsch. · The e-mail address or password is wrong.');
    expect(await openPage(link, { email: 'guest@example.eu', password: PASSWORD })).toBe('Willkommen bei Webstuhl GmbH (Mitglied). · Welcome to Webstuhl GmbH (member).');
    expect(await openPage(link, { email: 'guest@example.eu', password: PASSWORD })).toBe(
      'Diese Einladung ist ungültig, abgelaufen oder schon angenommen. · This invitation is invalid, has expired or was accepted already.',
    );

    // Someone invited who has no account yet creates one on the page, with their name, and joins.
    const fresh = await http.post(`/v1/orgs/${org.id}/invitations`, { email: 'neu@example.eu', role: 'admin' }, token);
    const freshInvitation = await lastEvent<{ invitationId: string; token: string }>(env, 'identity.invitation.created', (e) => e.data.invitationId === fresh.body.id);
    const freshLink = `/invitations/accept?token=${encodeURIComponent(freshInvitation.data.token)}`;
    expect(await openPage(freshLink, { email: 'neu@example.eu', password: 'zu kurz', firstName: 'Nina', lastName: 'Neu' })).toBe('Das Passwort braucht mindestens 12 Zeichen. · The password needs at least 12 characters.');
    // One name alone is neither a new account nor a sign-in: the missing one is named.
    expect(await openPage(freshLink, { email: 'neu@example.eu', password: PASSWORD, firstName: 'Nina', lastName: ' ' })).toBe('Bitte prüfen Sie den Nachnamen. · Please check the last name.');
    // A refused name is named as such, not taken for a broken invitation.
    expect(await openPage(freshLink, { email: 'neu@example.eu', password: PASSWORD, firstName: 'Nina', lastName: '<b>Neu</b>' })).toBe('Bitte prüfen Sie den Nachnamen. · Please check the last name.');
    expect(await openPage(freshLink, { email: 'neu@example.eu', password: PASSWORD, firstName: 'Nina', lastName: 'Neu' })).toBe(
      'Willkommen bei Webstuhl GmbH (Administrator). · Welcome to Webstuhl GmbH (admin).',
    );
    const members = (await http.get(`/v1/orgs/${org.id}/members`, token)).body.data as { email: string; role: string }[];
    expect(members.find((m) => m.email === 'neu@example.eu')).toMatchObject({ role: 'admin' });
  });

  it('works under a PUBLIC_BASE_URL with a path (a proxy serving Ally at /app): its script, API calls and redirects stay under it', async () => {
    const proxied = (await env.start(gatewayService, { PUBLIC_BASE_URL: 'https://ally.example.eu/app' })).url;
    const html = await (await fetch(`${proxied}/forgot-password`)).text();
    expect(html).toContain('<script src="/app/web/app.js" defer></script>');
    const slash = await fetch(`${proxied}/billing/`, { redirect: 'manual' });
    expect(slash.headers.get('location')).toBe('/app/billing');
    const saved: { calls?: string[] } = {};
    const said = await openPageOf(proxied, script, '/forgot-password', { email: 'unter@example.eu' }, saved, true, '/app');
    expect(said).toMatch(/^Wenn es ein Konto mit dieser Adresse gibt, ist ein Link unterwegs/);
    expect(saved.calls).toEqual(['/app/v1/auth/password/forgot']);
  });

  it('leaves every other path to the API: an unknown one is a 404 problem', async () => {
    expectProblem(await http.get('/verify-email/extra'), 404);
  });
});

describe('the export download page', () => {
  let world: PlatformWorld;
  let script: string;

  beforeAll(async () => {
    world = await startPlatformWorld({ gateway: true });
    script = await (await fetch(`${world.services.gateway!.url}/web/app.js`)).text();
  });

  afterAll(async () => {
    await world?.close();
  });

  it("the 'export ready' mail's link signs in and saves the package", async () => {
    const { http } = world;
    const me = (await http.post('/v1/auth/register', { email: 'export@example.eu', password: PASSWORD, firstName: 'Ella', lastName: 'Export' })).body;
    const request = (await http.post('/v1/privacy/requests', { type: 'access' }, me.accessToken)).body;
    await waitFor(async () => ((await http.get(`/v1/privacy/requests/${request.id}`, me.accessToken)).body.status === 'completed' ? true : undefined), 'the export to complete');
    const ready = await lastEvent<{ requestId: string; downloadPath: string }>(world.env, 'privacy.export.ready', (e) => e.data.requestId === request.id);
    expect(ready.data.downloadPath).toBe(`/privacy/requests/${request.id}/download`);

    const saved: { name?: string; size?: number } = {};
    const base = world.services.gateway!.url;
    expect(await openPageOf(base, script, ready.data.downloadPath, { email: 'export@example.eu', password: 'wrong password' }, saved)).not.toMatch(/download has started/);
    expect(await openPageOf(base, script, ready.data.downloadPath, { email: 'export@example.eu', password: PASSWORD }, saved)).toMatch(/download has started/);
    expect(saved.name).toMatch(/\.zip$/);
    expect(saved.size).toBeGreaterThan(100);
  });
});
