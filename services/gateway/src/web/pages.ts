/**
 * The pages the links in Ally's mails open (verification, password reset,
 * invitations, returning from Stripe): small forms that call the public API
 * from the browser (`app.js`), German and English side by side. The product's
 * own web app may take these paths over; until then a link in a mail works.
 */
export interface Page {
  title: string;
  /** Which behaviour of app.js the page wants. */
  kind: 'home' | 'verify' | 'reset' | 'forgot' | 'invite' | 'download' | 'message';
  body: string;
}

const field = (name: string, type: string, label: string, autocomplete: string) =>
  `<label>${label}<input name="${name}" type="${type}" autocomplete="${autocomplete}" required></label>`;

const result = '<p id="result" role="status" aria-live="polite"></p>';

export const PAGES: Record<string, Page> = {
  '/': {
    title: 'Ally',
    kind: 'home',
    body: '<p>Ally läuft. Die API ist unter <a href="/docs">/docs</a> beschrieben.</p><p lang="en">Ally is running. The API is described at <a href="/docs">/docs</a>.</p>',
  },
  '/verify-email': { title: 'E-Mail bestätigen · Confirm your e-mail', kind: 'verify', body: result },
  '/reset-password': {
    title: 'Neues Passwort · New password',
    kind: 'reset',
    body: `<form>${field('password', 'password', 'Neues Passwort (mindestens 12 Zeichen) · New password (at least 12 characters)', 'new-password')}<button>Speichern · Save</button></form>${result}`,
  },
  '/forgot-password': {
    title: 'Passwort vergessen · Forgot your password',
    kind: 'forgot',
    body: `<form>${field('email', 'email', 'E-Mail-Adresse · E-mail address', 'email')}<button>Link senden · Send a link</button></form>${result}`,
  },
  '/invitations/accept': {
    title: 'Einladung annehmen · Accept the invitation',
    kind: 'invite',
    body: `<p>Melden Sie sich mit dem Konto an, zu dem die Einladung gehört. · Sign in with the account the invitation is for.</p><form>${field('email', 'email', 'E-Mail-Adresse · E-mail address', 'email')}${field('password', 'password', 'Passwort · Password', 'current-password')}<button>Annehmen · Accept</button></form>${result}`,
  },
  '/privacy/requests/:id/download': {
    title: 'Ihre Daten herunterladen · Download your data',
    kind: 'download',
    body: `<p>Melden Sie sich an; das Paket wird dann heruntergeladen. · Sign in; the package then downloads.</p><form>${field('email', 'email', 'E-Mail-Adresse · E-mail address', 'email')}${field('password', 'password', 'Passwort · Password', 'current-password')}<button>Herunterladen · Download</button></form>${result}`,
  },
  '/billing': { title: 'Abrechnung · Billing', kind: 'message', body: '<p>Zurück in Ally. Ihr Abonnement sehen Sie unter GET /v1/billing/subscription. · Back in Ally: your subscription is at GET /v1/billing/subscription.</p>' },
  '/billing/success': {
    title: 'Zahlung erhalten · Payment received',
    kind: 'message',
    body: '<p>Danke! Ihr Abonnement ist in wenigen Sekunden aktiv. · Thank you! Your subscription is active in a few seconds.</p>',
  },
  '/billing/cancelled': { title: 'Bezahlung abgebrochen · Checkout cancelled', kind: 'message', body: '<p>Es wurde nichts berechnet. · Nothing was charged.</p>' },
};

const escape = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

export function renderPage(page: Page): string {
  return `<!doctype html>
<html lang="de"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escape(page.title)}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;color:#1d2433}label{display:block;margin:.8rem 0}input{display:block;width:100%;padding:.5rem;margin-top:.3rem;box-sizing:border-box}button{padding:.5rem 1rem}#result{font-weight:600}</style>
<script src="/web/app.js" defer></script></head>
<body data-page="${page.kind}"><h1>${escape(page.title)}</h1>${page.body}</body></html>
`;
}
