import { timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ProblemError } from '@ally/contracts';

/**
 * Ties a single sign-on to the browser that started it: /start sets a cookie
 * holding the attempt's `state`, and /callback goes on only when the browser
 * that arrives brings it back. Without it, whoever first presented a callback
 * URL (leaked from a log, or one an attacker got for their own account and
 * slipped to a victim: login CSRF) was signed in.
 */
const cookieName = (provider: string) => `ally_sso_${provider.replace(/[^A-Za-z0-9_-]/g, '_')}`;
const callbackPath = (provider: string) => `/v1/auth/sso/${encodeURIComponent(provider)}/callback`;
/** As long as identity keeps the attempt. */
const ATTEMPT_SECONDS = 600;

/** Remembers the attempt in the browser (`authorizationUrl` carries its state). */
export function rememberSsoAttempt(reply: FastifyReply, provider: string, authorizationUrl: string, publicBaseUrl: string): void {
  const state = new URL(authorizationUrl).searchParams.get('state');
  if (!state) return;
  const secure = publicBaseUrl.startsWith('https:') ? '; Secure' : '';
  // Lax: sent on the identity provider's top-level redirect back, not on requests other sites make in the background.
  reply.header('set-cookie', `${cookieName(provider)}=${encodeURIComponent(state)}; Path=${callbackPath(provider)}; Max-Age=${ATTEMPT_SECONDS}; HttpOnly; SameSite=Lax${secure}`);
}

/** The callback came back to the browser that started the attempt; the cookie is spent either way. */
export function assertSameBrowser(req: FastifyRequest, reply: FastifyReply, provider: string): void {
  reply.header('set-cookie', `${cookieName(provider)}=; Path=${callbackPath(provider)}; Max-Age=0; HttpOnly; SameSite=Lax`);
  const state = new URL(req.url, 'http://callback').searchParams.get('state') ?? '';
  const remembered = cookieOf(req.headers.cookie, cookieName(provider)) ?? '';
  const a = Buffer.from(state);
  const b = Buffer.from(remembered);
  if (!state || a.length !== b.length || !timingSafeEqual(a, b)) {
    throw new ProblemError(400, 'Single sign-on must finish in the browser that started it (it was started elsewhere, or over 10 minutes ago); start again');
  }
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
