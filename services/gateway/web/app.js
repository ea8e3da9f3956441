// The behaviour of the pages in pages.ts: each calls Ally's public API and says, in German and English, what it answered.
(() => {
  const token = new URLSearchParams(location.search).get('token') ?? '';
  // Read once, then taken out of the address: it stays in no browser history (a shared computer, a synced browser).
  if (token) {
    const rest = new URLSearchParams(location.search);
    rest.delete('token');
    const query = rest.toString();
    history.replaceState(null, '', `${location.pathname}${query ? `?${query}` : ''}`);
  }
  const both = (de, en) => `${de} · ${en}`;
  const say = (text, ok) => {
    const result = document.getElementById('result');
    result.textContent = text;
    result.style.color = ok ? '#17603a' : '#a3221b';
  };

  /** An API answer that is not a success, with what a person needs to hear about it. */
  class Refused extends Error {
    constructor(status, problem) {
      super(problem?.detail ?? `${status}`);
      this.status = status;
      this.problem = problem;
    }
  }
  // Where Ally is served from (PUBLIC_BASE_URL's path, '' at the root): its API is under it too.
  const base = document.body.dataset.base ?? '';
  const call = async (path, body, accessToken) => {
    const res = await fetch(`${base}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(accessToken ? { authorization: `Bearer ${accessToken}` } : {}) },
      body: JSON.stringify(body),
    });
    const answer = res.status === 204 ? null : await res.json().catch(() => null);
    if (!res.ok) throw new Refused(res.status, answer);
    return answer;
  };

  const LINK_INVALID = both('Dieser Link ist ungültig, abgelaufen oder schon benutzt.', 'This link is invalid, has expired or was used already.');
  const WRONG_LOGIN = both('E-Mail-Adresse oder Passwort ist falsch.', 'The e-mail address or password is wrong.');
  const SHORT_PASSWORD = both('Das Passwort braucht mindestens 12 Zeichen.', 'The password needs at least 12 characters.');
  const LONG_PASSWORD = both('Das Passwort darf höchstens 256 Zeichen haben.', 'The password may have at most 256 characters.');
  const FIELDS = {
    password: both('Dieses Passwort wird nicht angenommen (zu leicht zu erraten, oder es enthält Ihren Namen oder Ihre Adresse).', 'This password is not accepted (too easy to guess, or it holds your name or address).'),
    email: both('Bitte prüfen Sie die E-Mail-Adresse.', 'Please check the e-mail address.'),
    firstName: both('Bitte prüfen Sie den Vornamen.', 'Please check the first name.'),
    lastName: both('Bitte prüfen Sie den Nachnamen.', 'Please check the last name.'),
  };
  /** What went wrong, in words for a person (the API's own words are for programs, and English). */
  const explain = (err, page) => {
    if (!(err instanceof Refused)) return both('Ally ist gerade nicht erreichbar; bitte versuchen Sie es gleich noch einmal.', 'Ally cannot be reached right now; please try again in a moment.');
    const fields = (err.problem?.errors ?? []).map((e) => e.field);
    if (err.status === 429) return both('Zu viele Versuche; bitte warten Sie einen Moment.', 'Too many attempts; please wait a moment.');
    if (err.status === 401) return WRONG_LOGIN;
    const wrong = (err.problem?.errors ?? []).find((e) => FIELDS[e.field]);
    if (wrong?.field === 'password' && /at least/.test(wrong.message ?? '')) return SHORT_PASSWORD;
    if (wrong?.field === 'password' && /at most/.test(wrong.message ?? '')) return LONG_PASSWORD;
    if (wrong) return FIELDS[wrong.field];
    if (page === 'verify' && err.status === 400) {
      return both('Dieser Link gilt nicht (mehr). Haben Sie ihn schon einmal benutzt, ist Ihre Adresse bestätigt: melden Sie sich einfach an.', 'This link is not (or no longer) valid. If you used it before, your address is confirmed: just sign in.');
    }
    if (fields.includes('token') || (err.status === 400 && page !== 'download')) return page === 'invite' ? both('Diese Einladung ist ungültig, abgelaufen oder schon angenommen.', 'This invitation is invalid, has expired or was accepted already.') : LINK_INVALID;
    if (page === 'invite' && err.status === 403) return both('Diese Einladung ging an eine andere E-Mail-Adresse.', 'This invitation was sent to another e-mail address.');
    if (page === 'download') {
      if (err.status === 400 || err.status === 404) return both('Dieses Paket gibt es nicht, oder es gehört zu einem anderen Konto.', 'There is no such package, or it belongs to another account.');
      if (err.status === 409) return both('Das Paket ist noch nicht fertig; Sie bekommen eine E-Mail, sobald es bereitliegt.', 'The package is not ready yet; you will get an e-mail when it is.');
      if (err.status === 410) return both('Das Paket ist nicht mehr da (es wird nur bis zu dem Tag aufbewahrt, den die E-Mail nannte); bitte stellen Sie eine neue Anfrage.', 'The package is gone (it is kept only until the day the e-mail named); please file a new request.');
    }
    if (err.status === 409 && page === 'invite') return both('Zu dieser Adresse gibt es schon ein Konto: lassen Sie die Namensfelder leer und melden Sie sich an.', 'An account with this address exists: leave the name fields empty and sign in.');
    return both(`Das hat nicht geklappt (${err.status}).`, `That did not work (${err.status}): ${err.message}`);
  };
  const ROLES = { owner: ['Inhaber', 'owner'], admin: ['Administrator', 'admin'], member: ['Mitglied', 'member'] };

  /** The page's form, sent by this script only (its button is off until now); `again`: whether it may be sent again after a success. */
  const onSubmit = (handle, { again = false } = {}) => {
    const form = document.querySelector('form');
    const button = form.querySelector('button');
    button.disabled = false;
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const values = Object.fromEntries(new FormData(form));
      button.disabled = true;
      let done = false;
      try {
        say(await handle(values), true);
        done = !again;
      } catch (err) {
        say(explain(err, document.body.dataset.page), false);
      } finally {
        button.disabled = done;
      }
    });
  };
  const signIn = async ({ email, password }) => (await call('/v1/auth/login', { email, password })).accessToken;

  const pages = {
    verify: () =>
      onSubmit(async () => {
        await call('/v1/auth/verify-email', { token });
        return both('Ihre E-Mail-Adresse ist bestätigt.', 'Your e-mail address is confirmed.');
      }),
    reset: () =>
      onSubmit(async ({ password }) => {
        await call('/v1/auth/password/reset', { token, password });
        return both('Ihr Passwort ist geändert; alle Sitzungen sind beendet.', 'Your password is changed; every session has ended.');
      }),
    forgot: () =>
      onSubmit(
        async ({ email }) => {
          await call('/v1/auth/password/forgot', { email });
          return both('Wenn es ein Konto mit dieser Adresse gibt, ist ein Link unterwegs.', 'If an account has this address, a link is on its way.');
        },
        { again: true },
      ),
    download: () =>
      onSubmit(
        async (values) => {
          const accessToken = await signIn(values);
          const res = await fetch(`${base}/v1${location.pathname.slice(base.length)}?format=zip`, { headers: { authorization: `Bearer ${accessToken}` } });
          if (!res.ok) throw new Refused(res.status, await res.json().catch(() => null));
          const file = await res.blob();
          const link = document.createElement('a');
          link.href = URL.createObjectURL(file);
          link.download = /filename="([^"]+)"/.exec(res.headers.get('content-disposition') ?? '')?.[1] ?? 'ally-export.zip';
          link.click();
          return both(`Der Download hat begonnen (${file.size} Bytes).`, `The download has started (${file.size} bytes).`);
        },
        { again: true },
      ),
    // With a name, a new account for the invited address (the invitation came to it, so it may join at once); without, a sign-in.
    invite: () =>
      onSubmit(async ({ email, password, firstName, lastName }) => {
        // One name alone is neither a new account nor a sign-in: say which is missing.
        if (!firstName?.trim() !== !lastName?.trim()) throw new Refused(400, { errors: [{ field: firstName?.trim() ? 'lastName' : 'firstName', message: 'is required' }] });
        const accessToken =
          firstName?.trim() && lastName?.trim()
            ? (await call('/v1/auth/register', { email, password, firstName: firstName.trim(), lastName: lastName.trim() })).accessToken
            : await signIn({ email, password });
        const membership = await call('/v1/invitations/accept', { token }, accessToken);
        const [de, en] = ROLES[membership.role] ?? [membership.role, membership.role];
        return both(`Willkommen bei ${membership.orgName} (${de}).`, `Welcome to ${membership.orgName} (${en}).`);
      }),
  };
  pages[document.body.dataset.page]?.();
})();
