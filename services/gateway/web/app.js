// The behaviour of the pages in pages.ts: each calls Ally's public API and says what it answered.
(() => {
  const token = new URLSearchParams(location.search).get('token') ?? '';
  const say = (text, ok) => {
    const result = document.getElementById('result');
    result.textContent = text;
    result.style.color = ok ? '#17603a' : '#a3221b';
  };
  const call = async (path, body, accessToken) => {
    const res = await fetch(path, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(accessToken ? { authorization: `Bearer ${accessToken}` } : {}) },
      body: JSON.stringify(body),
    });
    const answer = res.status === 204 ? null : await res.json().catch(() => null);
    if (!res.ok) throw new Error(answer?.detail ?? `${res.status} ${res.statusText}`);
    return answer;
  };
  const onSubmit = (handle) => {
    const form = document.querySelector('form');
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const values = Object.fromEntries(new FormData(form));
      form.querySelector('button').disabled = true;
      try {
        say(await handle(values), true);
      } catch (err) {
        say(err.message, false);
      } finally {
        form.querySelector('button').disabled = false;
      }
    });
  };
  const pages = {
    verify: async () => {
      try {
        await call('/v1/auth/verify-email', { token });
        say('Ihre E-Mail-Adresse ist bestätigt. · Your e-mail address is confirmed.', true);
      } catch (err) {
        say(err.message, false);
      }
    },
    reset: () =>
      onSubmit(async ({ password }) => {
        await call('/v1/auth/password/reset', { token, password });
        return 'Ihr Passwort ist geändert; alle Sitzungen sind beendet. · Your password is changed; every session has ended.';
      }),
    forgot: () =>
      onSubmit(async ({ email }) => {
        await call('/v1/auth/password/forgot', { email });
        return 'Wenn es ein Konto mit dieser Adresse gibt, ist ein Link unterwegs. · If an account has this address, a link is on its way.';
      }),
    download: () =>
      onSubmit(async ({ email, password }) => {
        const { accessToken } = await call('/v1/auth/login', { email, password });
        const res = await fetch(`/v1${location.pathname}?format=zip`, { headers: { authorization: `Bearer ${accessToken}` } });
        if (!res.ok) throw new Error((await res.json().catch(() => null))?.detail ?? `${res.status} ${res.statusText}`);
        const file = await res.blob();
        const link = document.createElement('a');
        link.href = URL.createObjectURL(file);
        link.download = /filename="([^"]+)"/.exec(res.headers.get('content-disposition') ?? '')?.[1] ?? 'ally-export.zip';
        link.click();
        return `Der Download hat begonnen (${file.size} Bytes). · The download has started (${file.size} bytes).`;
      }),
    invite: () =>
      onSubmit(async ({ email, password }) => {
        const { accessToken } = await call('/v1/auth/login', { email, password });
        const membership = await call('/v1/invitations/accept', { token }, accessToken);
        return `Willkommen bei ${membership.orgName} (${membership.role}). · Welcome to ${membership.orgName} (${membership.role}).`;
      }),
  };
  pages[document.body.dataset.page]?.();
})();
