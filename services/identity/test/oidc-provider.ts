import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateKeyPairSync } from 'node:crypto';
// @ts-expect-error oidc-provider ships no type declarations (and @types/oidc-provider is not installed)
import Provider from 'oidc-provider';

export const CLIENT_ID = 'ally';
export const CLIENT_SECRET = 'a-client-secret-for-the-local-provider';
export const REDIRECT_URI = 'http://localhost:3000/v1/auth/sso/local/callback';

/** The people the local provider knows, by subject. */
const accounts: Record<string, { email: string; given_name: string; family_name: string }> = {
  'sub-anna': { email: 'Anna.Schmidt@example.eu', given_name: 'Anna', family_name: 'Schmidt' },
  'sub-jonas': { email: 'jonas.weber@example.eu', given_name: 'Jonas', family_name: 'Weber' },
  'sub-lena': { email: 'lena.vogel@example.eu', given_name: 'Lena', family_name: 'Vogel' },
  'sub-mira': { email: 'mira.brandt@example.eu', given_name: 'Mira', family_name: 'Brandt' },
  'sub-twice': { email: 'zwei.mal@example.eu', given_name: 'Zora', family_name: 'Zwilling' },
  'sub-markup': { email: 'markup@example.eu', given_name: 'R2-D2 <script>alert(1)</script>', family_name: 'Droid' },
  'sub-noaddress': { email: '  Not An Email  ', given_name: 'Nina', family_name: 'Nomail' },
};

/**
 * A real OpenID provider (oidc-provider) on http://127.0.0.1:<free port> with one
 * confidential client that must use PKCE. Login and consent are answered by two
 * small routes (what a login page would post), so a fetch-driven "browser" can
 * walk the whole authorization code flow.
 */
export async function startProvider(): Promise<{ issuer: string; close: () => Promise<void> }> {
  let provider: any;
  const server: Server = createServer((req, res) => {
    if (req.url?.startsWith('/interaction/')) {
      interaction(req, res).catch((err: Error) => {
        res.statusCode = 500;
        res.end(err.message);
      });
    } else {
      provider.callback()(req, res);
    }
  });

  async function interaction(req: IncomingMessage, res: ServerResponse) {
    const [, , uid, step] = new URL(req.url!, 'http://op').pathname.split('/');
    const details = await provider.interactionDetails(req, res);
    if (details.uid !== uid) throw new Error('interaction cookie does not match the uid');
    if (req.method === 'GET' && !step) {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ uid, prompt: details.prompt.name }));
      return;
    }
    if (req.method === 'POST' && step === 'login' && details.prompt.name === 'login') {
      let body = '';
      for await (const chunk of req) body += chunk;
      const accountId = new URLSearchParams(body).get('login') ?? '';
      if (!accounts[accountId]) throw new Error(`unknown account ${accountId}`);
      await provider.interactionFinished(req, res, { login: { accountId } }, { mergeWithLastSubmission: false });
      return;
    }
    if (req.method === 'POST' && step === 'consent' && details.prompt.name === 'consent') {
      const { prompt, params, session, grantId } = details;
      const grant = grantId
        ? (await provider.Grant.find(grantId))!
        : new provider.Grant({ accountId: session!.accountId, clientId: params.client_id as string });
      const missing = prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[] };
      if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
      if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
      await provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } }, { mergeWithLastSubmission: true });
      return;
    }
    res.statusCode = 400;
    res.end(`unexpected ${req.method} ${req.url} at prompt ${details.prompt.name}`);
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const signingKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });

  const configuration = {
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        redirect_uris: [REDIRECT_URI],
        grant_types: ['authorization_code'],
        response_types: ['code'],
      },
    ],
    pkce: { required: () => true },
    // conformIdTokenClaims stays at its default (true): with an access token issued, the
    // ID token carries only sub, and email and names come from UserInfo (OIDC Core 5.4).
    ttl: { AccessToken: 600, AuthorizationCode: 60, Grant: 600, IdToken: 600, Interaction: 600, Session: 600 },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['given_name', 'family_name'] },
    cookies: { keys: ['local-provider-cookie-key'] },
    jwks: { keys: [{ ...signingKey, kid: 'op-key', use: 'sig', alg: 'RS256' }] },
    findAccount: (_ctx: unknown, sub: string) => {
      const account = accounts[sub];
      if (!account) return undefined;
      return { accountId: sub, claims: () => ({ sub, email: account.email, email_verified: true, given_name: account.given_name, family_name: account.family_name }) };
    },
  };
  provider = new Provider(issuer, configuration);
  return {
    issuer,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/**
 * A browser without a browser: follows redirects by hand, keeps the provider's
 * cookies, signs in as `login`, consents, and stops where the provider sends it
 * back to the redirect URI; answers that full URL.
 */
export async function signInAtProvider(authorizationUrl: string, login: string): Promise<string> {
  const jar = new Map<string, string>();
  let url = new URL(authorizationUrl);
  let method = 'GET';
  let body: string | undefined;
  for (let hop = 0; hop < 20; hop++) {
    const res = await fetch(url, {
      method,
      body,
      redirect: 'manual',
      headers: {
        cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; '),
        ...(body !== undefined ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
      },
    });
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const name = pair.slice(0, pair.indexOf('=')).trim();
      const value = pair.slice(pair.indexOf('=') + 1).trim();
      const expired = attrs.some((a) => /^\s*expires=/i.test(a) && new Date(a.split('=')[1]).getTime() <= Date.now());
      if (!value || expired) jar.delete(name);
      else jar.set(name, value);
    }
    if (res.status >= 300 && res.status < 400) {
      const location = new URL(res.headers.get('location')!, url);
      if (location.href.startsWith(REDIRECT_URI)) return location.href;
      [url, method, body] = [location, 'GET', undefined];
      continue;
    }
    if (res.status === 200 && url.pathname.startsWith('/interaction/') && method === 'GET') {
      const { prompt } = (await res.json()) as { prompt: string };
      url = new URL(`${url.pathname}/${prompt}`, url);
      method = 'POST';
      body = prompt === 'login' ? new URLSearchParams({ login }).toString() : '';
      continue;
    }
    throw new Error(`The provider answered ${res.status} at ${method} ${url.href}: ${await res.text()}`);
  }
  throw new Error('Too many redirects at the provider');
}
