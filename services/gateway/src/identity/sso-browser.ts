import type { FastifyReply, FastifyRequest } from 'fastify';
import { basePathOf } from '../common/base-path.js';

/**
 * Ties a single sign-on to the browser that started it: /start sets a cookie
 * holding the attempt's `state`, and /callback hands identity what the
 * arriving browser brought back; identity goes on only when it is the
 * callback's own. Without it, whoever first presented a callback URL (leaked
 * from a log, or an attacker's own attempt slipped to a victim: login CSRF)
 * was signed in.
 */
const cookieName = (provider: string) => `ally_sso_${provider.replace(/[^A-Za-z0-9_-]/g, '_')}`;
/** Where the browser comes back: under the public base URL's own path, if it has one (`https://example.eu/ally`). */
const callbackPath = (provider: string, publicBaseUrl: string) => `${basePathOf(publicBaseUrl)}/v1/auth/sso/${encodeURIComponent(provider)}/callback`;
/** As long as identity keeps the attempt. */
const ATTEMPT_SECONDS = 600;

/** Remembers the attempt in the browser (`authorizationUrl` carries its state). */
export function rememberSsoAttempt(reply: FastifyReply, provider: string, authorizationUrl: string, publicBaseUrl: string): void {
  const state = new URL(authorizationUrl).searchParams.get('state');
  if (!state) return;
  const secure = publicBaseUrl.startsWith('https:') ? '; Secure' : '';
  // Lax: sent on the identity provider's top-level redirect back, not on requests other sites make in the background.
  reply.header('set-cookie', `${cookieName(provider)}=${encodeURIComponent(state)}; Path=${callbackPath(provider, publicBaseUrl)}; Max-Age=${ATTEMPT_SECONDS}; HttpOnly; SameSite=Lax${secure}`);
}

/** The state the browser brought back to the callback ('' for none), for identity to compare; the cookie is spent either way. */
export function spendSsoAttempt(req: FastifyRequest, reply: FastifyReply, provider: string, publicBaseUrl: string): string {
  reply.header('set-cookie', `${cookieName(provider)}=; Path=${callbackPath(provider, publicBaseUrl)}; Max-Age=0; HttpOnly; SameSite=Lax`);
  return (cookieOf(req.headers.cookie, cookieName(provider)) ?? '').slice(0, 512);
}

function cookieOf(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const at = part.indexOf('=');
    if (at > 0 && part.slice(0, at).trim() === name) {
      try {
        return decodeURIComponent(part.slice(at + 1).trim());
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}
