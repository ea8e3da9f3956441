import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { identityService } from '@ally/identity';
import { confirmEmail, httpClient, waitFor } from '@ally/testing';
import { gatewayService } from '@ally/gateway';
import { startPlatformWorld, type PlatformWorld } from './platform-world.js';

const PASSWORD = 'Leuchtturm am Deich bei Ebbe';
const log: any[] = [];
const bad: any[] = [];

describe('apiprobe a', () => {
  let w: PlatformWorld;
  let http: PlatformWorld['http'];
  beforeAll(async () => {
    w = await startPlatformWorld({ gateway: true });
    const gw = await w.env.start(gatewayService, { AUTH_RATE_LIMIT_PER_MINUTE: '100000', RATE_LIMIT_PER_MINUTE: '1000000' });
    http = httpClient(gw.url);
  }, 120_000);
  afterAll(async () => {
    writeFileSync('/tmp/zz-scratch-apiprobe-a.json', JSON.stringify({ bad, log }, null, 1));
    await w?.close();
  });

  const chk = (label: string, r: any, want: number | number[], extra?: (b: any) => string | undefined) => {
    const wants = Array.isArray(want) ? want : [want];
    const ct = r.headers.get('content-type')?.split(';')[0];
    const entry = { label, status: r.status, ct, rid: !!r.headers.get('x-request-id'), body: typeof r.body === 'string' ? r.body.slice(0, 300) : JSON.stringify(r.body)?.slice(0, 600) };
    log.push(entry);
    const problems: string[] = [];
    if (!wants.includes(r.status)) problems.push(`status ${r.status} want ${wants}`);
    if (r.status >= 400 && ct !== 'application/problem+json') problems.push(`ct ${ct}`);
    if (r.status >= 400 && (!r.body?.type || !r.body?.title || r.body?.status !== r.status || !r.body?.detail)) problems.push('problem fields');
    if (!entry.rid) problems.push('no x-request-id');
    const e = extra && r.status < 400 ? extra(r.body) : undefined;
    if (e) problems.push(e);
    if (problems.length) bad.push({ ...entry, problems });
    return r;
  };
  const keys = (o: any, ks: string[]) => {
    if (!o || typeof o !== 'object') return `not object: ${JSON.stringify(o)?.slice(0, 100)}`;
    const miss = ks.filter((k) => !(k in o));
    return miss.length ? `missing ${miss.join(',')} in ${Object.keys(o).join(',')}` : undefined;
  };
  const register = async (name: string, verify = true) => {
    const email = `${name.toLowerCase()}-${randomUUID().slice(0, 6)}@example.eu`;
    const r = chk(`register ${name}`, await http.post('/v1/auth/register', { email, password: PASSWORD, firstName: name, lastName: 'Probe', locale: 'de' }), 201, (b) =>
      keys(b, ['user', 'accessToken', 'refreshToken', 'expiresIn']),
    );
    if (verify) await confirmEmail(w.env, r.body.user.id);
    return { email, id: r.body.user.id as string, token: r.body.accessToken as string, refresh: r.body.refreshToken as string };
  };

  it('identity', async () => {
    const a = await register('Anna');
    const b = await register('Bernd');
    // register edge cases
    chk('register empty', await http.post('/v1/auth/register', {}), 400);
    chk('register no body', await http.request('POST', '/v1/auth/register', {}), 400);
    chk('register extra', await http.post('/v1/auth/register', { email: 'x1@example.eu', password: PASSWORD, firstName: 'X', lastName: 'Y', admin: true }), 400);
    chk('register types', await http.post('/v1/auth/register', { email: 5, password: [], firstName: {}, lastName: null }), 400);
    chk('register dup', await http.post('/v1/auth/register', { email: a.email, password: PASSWORD, firstName: 'Anna', lastName: 'Probe' }), [409, 201, 202]);
    chk('register locale fr', await http.post('/v1/auth/register', { email: 'fr@example.eu', password: PASSWORD, firstName: 'Fr', lastName: 'Ance', locale: 'fr' }), 400);
    chk('register bad json', await http.request('POST', '/v1/auth/register', { raw: '{"email":', headers: { 'content-type': 'application/json' } }), 400);
    chk('register text/plain', await http.request('POST', '/v1/auth/register', { raw: 'hello', headers: { 'content-type': 'text/plain' } }), [400, 415]);
    chk('register orgName', await http.post('/v1/auth/register', { email: `orgy-${randomUUID().slice(0, 5)}@example.eu`, password: PASSWORD, firstName: 'Olga', lastName: 'Orgy', organizationName: 'Orgy GmbH' }), 201, (bd) => keys(bd, ['user', 'accessToken']));
    // verify-email
    chk('verify bogus', await http.post('/v1/auth/verify-email', { token: 'x'.repeat(32) }), [400, 404, 410]);
    chk('verify empty', await http.post('/v1/auth/verify-email', {}), 400);
    chk('verify number', await http.post('/v1/auth/verify-email', { token: 12345678901234567890 }), 400);
    const c = await register('Carla', false);
    const mails = await waitFor(async () => {
      const m = await http.get(`/v1/dev/mailbox?to=${encodeURIComponent(c.email)}`);
      return (m.body?.data ?? m.body)?.length ? m : undefined;
    }, 'mail');
    chk('mailbox', mails, 200);
    log.push({ mailbox: mails.body });
    const mb = mails.body?.data ?? mails.body;
    const tok = mb[0]?.tokens?.[0] ?? mb[0]?.token ?? (JSON.stringify(mb[0]).match(/token=([A-Za-z0-9_-]+)/) ?? [])[1];
    if (tok) {
      chk('verify real', await http.post('/v1/auth/verify-email', { token: tok }), 204);
      chk('verify reuse', await http.post('/v1/auth/verify-email', { token: tok }), [400, 404, 409, 410, 204]);
    } else bad.push({ label: 'no token in mailbox', mb });
    chk('mailbox no to', await http.get('/v1/dev/mailbox'), [200, 400]);
    chk('mailbox TO', await http.get('/v1/dev/mailbox?TO=x'), 400);
    // me
    chk('me', await http.get('/v1/me', a.token), 200, (bd) =>
      keys(bd, ['id', 'email', 'firstName', 'lastName', 'locale', 'emailVerified', 'settings', 'memberships']) ?? keys(bd.settings, ['restrictToEu']),
    );
    chk('me c after verify', await http.get('/v1/me', c.token), 200, (bd) => (bd.emailVerified === true ? undefined : `emailVerified ${bd.emailVerified}`));
    chk('me noauth', await http.get('/v1/me'), 401);
    chk('me badauth', await http.get('/v1/me', 'garbage'), 401);
    chk('me ally_ bad', await http.get('/v1/me', 'ally_nonsense'), 401);
    chk('patch me', await http.patch('/v1/me', { firstName: 'Anne' }, a.token), 200, (bd) => (bd.firstName === 'Anne' ? undefined : `firstName ${bd.firstName}`));
    chk('patch me empty', await http.patch('/v1/me', {}, a.token), 400);
    chk('patch me nobody', await http.request('PATCH', '/v1/me', { token: a.token }), 400);
    chk('patch me extra', await http.patch('/v1/me', { email: 'x@y.eu' }, a.token), 400);
    chk('patch me types', await http.patch('/v1/me', { firstName: 7 }, a.token), 400);
    chk('patch me locale', await http.patch('/v1/me', { locale: 'en' }, a.token), 200, (bd) => (bd.locale === 'en' ? undefined : 'locale'));
    chk('patch me array', await http.request('PATCH', '/v1/me', { raw: '[1,2]', token: a.token, headers: { 'content-type': 'application/json' } }), 400);
    chk('patch me null', await http.request('PATCH', '/v1/me', { raw: 'null', token: a.token, headers: { 'content-type': 'application/json' } }), 400);
    chk('settings', await http.patch('/v1/me/settings', { restrictToEu: true }, a.token), 200, (bd) => keys(bd, ['restrictToEu']));
    chk('settings str', await http.patch('/v1/me/settings', { restrictToEu: 'yes' }, a.token), 400);
    chk('settings empty', await http.patch('/v1/me/settings', {}, a.token), 400);
    chk('settings noauth', await http.patch('/v1/me/settings', { restrictToEu: true }), 401);
    // api keys
    const k1 = chk('apikey create', await http.post('/v1/me/api-keys', { name: 'k1', workspace: 'private' }, a.token), 201, (bd) => keys(bd, ['id', 'key']));
    chk('apikey bad ws', await http.post('/v1/me/api-keys', { name: 'k2', workspace: 'nope' }, a.token), 400);
    chk('apikey other org', await http.post('/v1/me/api-keys', { name: 'k2', workspace: randomUUID() }, a.token), [403, 404]);
    chk('apikey missing name', await http.post('/v1/me/api-keys', { workspace: 'private' }, a.token), 400);
    for (let i = 0; i < 12; i++) await http.post('/v1/me/api-keys', { name: `bulk${i}`, workspace: 'private' }, a.token);
    const seen: string[] = [];
    let cursor: string | null | undefined;
    let pages = 0;
    do {
      const r = chk('apikeys page', await http.get(`/v1/me/api-keys?limit=5${cursor ? `&cursor=${cursor}` : ''}`, a.token), 200, (bd) => keys(bd, ['data', 'nextCursor']));
      seen.push(...r.body.data.map((k: any) => k.id));
      cursor = r.body.nextCursor;
      pages++;
    } while (cursor && pages < 10);
    if (seen.length !== 13 || new Set(seen).size !== 13) bad.push({ label: 'apikeys pagination', seen: seen.length, uniq: new Set(seen).size });
    chk('apikeys limit 0', await http.get('/v1/me/api-keys?limit=0', a.token), 400);
    chk('apikeys limit abc', await http.get('/v1/me/api-keys?limit=abc', a.token), 400);
    chk('apikeys limit 1000', await http.get('/v1/me/api-keys?limit=1000', a.token), 400);
    chk('apikeys cursor junk', await http.get('/v1/me/api-keys?cursor=junk', a.token), 400);
    chk('apikeys unknown q', await http.get('/v1/me/api-keys?foo=1', a.token), 400);
    chk('apikey use me', await http.get('/v1/me', k1.body.key), 200);
    chk('apikey del other', await http.delete(`/v1/me/api-keys/${k1.body.id}`, b.token), 404);
    chk('apikey del malformed', await http.delete('/v1/me/api-keys/123', a.token), 400);
    chk('apikey del unknown', await http.delete(`/v1/me/api-keys/${randomUUID()}`, a.token), 404);
    chk('apikey del', await http.delete(`/v1/me/api-keys/${k1.body.id}`, a.token), 204);
    chk('apikey del again', await http.delete(`/v1/me/api-keys/${k1.body.id}`, a.token), 404);
    chk('apikey revoked use', await http.get('/v1/me', k1.body.key), 401);
    // login/refresh/logout
    chk('login', await http.post('/v1/auth/login', { email: b.email, password: PASSWORD }), 200, (bd) => keys(bd, ['accessToken', 'refreshToken', 'expiresIn']));
    chk('login wrong', await http.post('/v1/auth/login', { email: b.email, password: 'wrong password here' }), 401);
    chk('login unknown', await http.post('/v1/auth/login', { email: 'nobody@example.eu', password: 'wrong password here' }), 401);
    chk('login empty', await http.post('/v1/auth/login', {}), 400);
    chk('login types', await http.post('/v1/auth/login', { email: b.email, password: 123 }), 400);
    const r1 = chk('refresh', await http.post('/v1/auth/refresh', { refreshToken: b.refresh }), 200, (bd) => keys(bd, ['accessToken', 'refreshToken', 'expiresIn']));
    chk('refresh reuse', await http.post('/v1/auth/refresh', { refreshToken: b.refresh }), 401);
    chk('refresh family', await http.post('/v1/auth/refresh', { refreshToken: r1.body.refreshToken }), 401);
    chk('refresh bogus', await http.post('/v1/auth/refresh', { refreshToken: 'y'.repeat(40) }), 401);
    chk('refresh empty', await http.post('/v1/auth/refresh', {}), 400);
    const l2 = await http.post('/v1/auth/login', { email: b.email, password: PASSWORD });
    chk('logout', await http.post('/v1/auth/logout', { refreshToken: l2.body.refreshToken }), 204);
    chk('logout again', await http.post('/v1/auth/logout', { refreshToken: l2.body.refreshToken }), [204, 401]);
    chk('refresh after logout', await http.post('/v1/auth/refresh', { refreshToken: l2.body.refreshToken }), 401);
    chk('logout bogus', await http.post('/v1/auth/logout', { refreshToken: 'z'.repeat(40) }), [204, 401]);
    chk('logout empty', await http.post('/v1/auth/logout', {}), 400);
    chk('forgot unknown', await http.post('/v1/auth/password/forgot', { email: 'nobody@example.eu' }), 202);
    chk('forgot known', await http.post('/v1/auth/password/forgot', { email: b.email }), 202);
    chk('forgot bad', await http.post('/v1/auth/password/forgot', { email: 'notanemail' }), 400);
    chk('reset bogus', await http.post('/v1/auth/password/reset', { token: 'q'.repeat(40), password: 'Ein ganz neues Passwort 1' }), [400, 404, 410]);
    chk('reset empty', await http.post('/v1/auth/password/reset', {}), 400);
    const resetMail = await waitFor(async () => {
      const m = await http.get(`/v1/dev/mailbox?to=${encodeURIComponent(b.email)}`);
      const list = m.body?.data ?? m.body;
      return list?.find((x: any) => /reset|passwort|password/i.test(JSON.stringify(x))) ? list : undefined;
    }, 'reset mail');
    const rm = resetMail.find((x: any) => /reset|passwort|password/i.test(JSON.stringify(x)));
    log.push({ resetMail: rm });
    const rtok = rm?.tokens?.[0] ?? rm?.token ?? (JSON.stringify(rm).match(/token=([A-Za-z0-9_-]+)/) ?? [])[1];
    const l3 = await http.post('/v1/auth/login', { email: b.email, password: PASSWORD });
    chk('reset weak', await http.post('/v1/auth/password/reset', { token: rtok, password: 'a' }), 400);
    chk('reset real', await http.post('/v1/auth/password/reset', { token: rtok, password: 'Ein ganz neues Passwort 1' }), 204);
    chk('reset reuse', await http.post('/v1/auth/password/reset', { token: rtok, password: 'Ein ganz neues Passwort 2' }), [400, 404, 410]);
    chk('refresh after reset', await http.post('/v1/auth/refresh', { refreshToken: l3.body.refreshToken }), 401);
    chk('login new pw', await http.post('/v1/auth/login', { email: b.email, password: 'Ein ganz neues Passwort 1' }), 200);
    chk('sso unknown', await http.get('/v1/auth/sso/nope/start'), [400, 404]);
    chk('sso weird', await http.get('/v1/auth/sso/NOPE%20X/start'), [400, 404]);
    chk('sso cb unknown', await http.get('/v1/auth/sso/nope/callback?code=x&state=y'), [400, 401, 404]);
    chk('sso cb none', await http.get('/v1/auth/sso/nope/callback'), [400, 401, 404]);
    chk('jwks', await http.get('/.well-known/jwks.json'), 200, (bd) => keys(bd, ['keys']));
  }, 120_000);
});
