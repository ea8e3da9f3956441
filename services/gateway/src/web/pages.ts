/**
 * The pages the links in Ally's mails open (verification, password reset,
 * invitations, returning from Stripe): small forms that call the public API
 * from the browser (`app.js`), German and English side by side. The product's
 * own web app may take these paths over; until then a link in a mail works.
 */
import { createHash } from 'node:crypto';

export interface Page {
  title: string;
  /** Which behaviour of app.js the page wants. */
  kind: 'home' | 'verify' | 'reset' | 'forgot' | 'invite' | 'download' | 'message';
  body: string;
}

/** German, then English marked as such (screen readers read each in its language). */
const both = (de: string, en: string) => `${de} · <span lang="en">${en}</span>`;

const field = (name: string, type: string, label: string, autocomplete: string, extra = 'required') =>
  `<label>${label}<input name="${name}" type="${type}" autocomplete="${autocomplete}" ${extra}></label>`;

/**
 * A form the script sends: POST (so a password never lands in an address,
 * a history or a log) and its button off until app.js has taken the form over.
 */
const form = (fields: string, button: string) => `<form method="post">${fields}<button disabled>${button}</button></form>`;

const result = '<p id="result" role="status" aria-live="polite"></p>';
const email = field('email', 'email', both('E-Mail-Adresse', 'E-mail address'), 'email');
const password = field('password', 'password', both('Passwort', 'Password'), 'current-password');
const newPassword = field('password', 'password', both('Neues Passwort (mindestens 12 Zeichen)', 'New password (at least 12 characters)'), 'new-password', 'required minlength="12" maxlength="256"');

export const PAGES: Record<string, Page> = {
  '/': {
    title: 'Ally',
    kind: 'home',
    body: '<p>Ally läuft. Die API ist unter <a href="/docs">/docs</a> beschrieben.</p><p lang="en">Ally is running. The API is described at <a href="/docs">/docs</a>.</p>',
  },
  // A click confirms, not the page opening: a mail scanner that opens links (and runs their scripts) confirms nothing.
  '/verify-email': {
    title: 'E-Mail bestätigen · Confirm your e-mail',
    kind: 'verify',
    body:
      `<p>${both('Haben Sie dieses Konto bei Ally angelegt? Dann bestätigen Sie Ihre Adresse; sonst schließen Sie diese Seite einfach.', 'Did you create this Ally account? Then confirm your address; otherwise just close this page.')}</p>` +
      form('', both('Adresse bestätigen', 'Confirm my address')) +
      result,
  },
  '/reset-password': {
    title: 'Neues Passwort · New password',
    kind: 'reset',
    body: `${form(newPassword, both('Speichern', 'Save'))}${result}`,
  },
  '/forgot-password': {
    title: 'Passwort vergessen · Forgot your password',
    kind: 'forgot',
    body: `${form(email, both('Link senden', 'Send a link'))}${result}`,
  },
  '/invitations/accept': {
    title: 'Einladung annehmen · Accept the invitation',
    kind: 'invite',
    body:
      `<p>${both('Melden Sie sich mit der E-Mail-Adresse an, an die die Einladung ging.', 'Sign in with the e-mail address the invitation was sent to.')}</p>` +
      form(
        `${email}${field('password', 'password', both('Passwort (für ein neues Konto mindestens 12 Zeichen)', 'Password (at least 12 characters for a new account)'), 'current-password')}` +
          `<fieldset><legend>${both('Noch kein Konto? Mit Ihrem Namen legen wir es an.', 'No account yet? With your name we create one.')}</legend>` +
          `${field('firstName', 'text', both('Vorname', 'First name'), 'given-name', '')}${field('lastName', 'text', both('Nachname', 'Last name'), 'family-name', '')}</fieldset>`,
        both('Annehmen', 'Accept'),
      ) +
      result,
  },
  '/privacy/requests/:id/download': {
    title: 'Ihre Daten herunterladen · Download your data',
    kind: 'download',
    body: `<p>${both('Melden Sie sich an; das Paket wird dann heruntergeladen.', 'Sign in; the package then downloads.')}</p>${form(`${email}${password}`, both('Herunterladen', 'Download'))}${result}`,
  },
  '/billing': { title: 'Abrechnung · Billing', kind: 'message', body: `<p>${both('Zurück in Ally.', 'Back in Ally.')}</p>` },
  '/billing/success': {
    title: 'Zahlung erhalten · Payment received',
    kind: 'message',
    body: `<p>${both('Danke! Ihr Abonnement ist in wenigen Sekunden aktiv.', 'Thank you! Your subscription is active in a few seconds.')}</p>`,
  },
  '/billing/cancelled': { title: 'Bezahlung abgebrochen · Checkout cancelled', kind: 'message', body: `<p>${both('Es wurde nichts berechnet.', 'Nothing was charged.')}</p>` },
};

const STYLE =
  'body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;color:#1d2433}label{display:block;margin:.8rem 0}fieldset{border:1px solid #ccd;margin:1rem 0;padding:0 .8rem}input{display:block;width:100%;padding:.5rem;margin-top:.3rem;box-sizing:border-box}button{padding:.5rem 1rem}#result{font-weight:600}';

/**
 * The pages' own policy, stricter than the API's (whose OpenAPI UI needs
 * inline scripts): their one script from here, their one style by its hash,
 * calls to this origin only, and no frame, form target or base elsewhere.
 */
export const pageSecurityPolicy = (overHttp: boolean): string =>
  [
    "default-src 'self'",
    "script-src 'self'",
    `style-src 'sha256-${createHash('sha256').update(STYLE).digest('base64')}'`,
    "img-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'self'",
    ...(overHttp ? [] : ['upgrade-insecure-requests']),
  ].join('; ');

const escape = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

export function renderPage(page: Page, basePath = ''): string {
  return `<!doctype html>
<html lang="de"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escape(page.title)}</title><link rel="icon" href="data:,">
<style>${STYLE}</style>
<script src="${escape(basePath)}/web/app.js" defer></script></head>
<body data-page="${page.kind}" data-base="${escape(basePath)}"><h1>${escape(page.title)}</h1>${page.body.replaceAll('href="/', `href="${escape(basePath)}/`)}<noscript><p>Diese Seite braucht JavaScript. · <span lang="en">This page needs JavaScript.</span></p></noscript></body></html>
`;
}
