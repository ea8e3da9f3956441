import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { startBrevoEmulator, type BrevoEmulator } from '@ally/emulators';
import { gatewayService } from '@ally/gateway';
import { identityService } from '@ally/identity';
import { notifyService } from '@ally/notify';
import { privacyService } from '@ally/privacy';
import { confirmEmail, createTestEnv, httpClient, lastEvent, type TestEnv } from '@ally/testing';
import { expectProblem } from './problem-assertions.js';
import { notifyEnv } from './service-env.js';

/**
 * Requests as clients really send them, at the edges of the gateway: a JSON
 * content type on every request (body or not), webhooks without a body, and
 * query parameters that are wrong or unknown.
 */
const PASSWORD = 'Kiefernwald am Morgen 2026';
const SECRET = 'gateway-edges-brevo-secret';
const UNKNOWN = '0b7c7b7e-7a53-4c1e-9d43-3f1f0d7f9c11';
/** What fetch wrappers send on every request. */
const JSON_TYPE = { 'content-type': 'application/json' };

let env: TestEnv;
let brevo: BrevoEmulator;
let http: ReturnType<typeof httpClient>;
let owner: { user: { id: string }; accessToken: string; refreshToken: string };

beforeAll(async () => {
  env = await createTestEnv();
  brevo = await startBrevoEmulator();
  await env.start(identityService);
  await env.start(notifyService, notifyEnv(brevo, { BREVO_WEBHOOK_SECRET: SECRET, NOTIFY_POLL_MS: '50' }));
  await env.start(privacyService);
  http = httpClient((await env.start(gatewayService)).url);
  owner = await register('ronja@example.eu', 'Ronja', 'Lind');
  await confirmEmail(env, owner.user.id);
});

afterAll(async () => {
  await env?.close();
  await brevo?.close();
});

async function register(email: string, firstName: string, lastName: string) {
  const res = await http.post('/v1/auth/register', { email, password: PASSWORD, firstName, lastName });
  expect(res.status).toBe(201);
  return res.body as { user: { id: string }; accessToken: string; refreshToken: string };
}

describe('an empty body sent with Content-Type: application/json', () => {
  it('is no body: DELETE /v1/orgs/:orgId/members/:userId removes the member with 204', async () => {
    const org = (await http.post('/v1/orgs', { name: 'Lind Tischlerei GmbH' }, owner.accessToken)).body;
    const invite = (await http.post(`/v1/orgs/${org.id}/invitations`, { email: 'birk@example.eu', role: 'member' }, owner.accessToken)).body;
    const event = await lastEvent<{ invitationId: string; token: string }>(env, 'identity.invitation.created', (e) => e.data.invitationId === invite.id);
    const member = await register('birk@example.eu', 'Birk', 'Borkason');
    expect((await http.post('/v1/invitations/accept', { token: event.data.token }, member.accessToken)).status).toBe(200);

    const removed = await http.request('DELETE', `/v1/orgs/${org.id}/members/${member.user.id}`, { raw: '', headers: JSON_TYPE, token: owner.accessToken });
    expect(removed.status).toBe(204);
    const members = await http.get(`/v1/orgs/${org.id}/members`, owner.accessToken);
    expect(members.body.data.map((m: { userId: string }) => m.userId)).toEqual([owner.user.id]);
  });

  it('is no body with a charset too: DELETE /v1/me/api-keys/:id answers 204', async () => {
    const key = await http.post('/v1/me/api-keys', { name: 'CI', workspace: 'private' }, owner.accessToken);
    expect(key.status).toBe(201);
    const revoked = await http.request('DELETE', `/v1/me/api-keys/${key.body.id}`, { raw: '', headers: { 'content-type': 'application/json; charset=utf-8' }, token: owner.accessToken });
    expect(revoked.status).toBe(204);
  });

  it('still answers 400 naming the required fields where a route needs a body', async () => {
    const res = await http.request('POST', '/v1/auth/logout', { raw: '', headers: JSON_TYPE });
    expectProblem(res, 400, ['refreshToken']);
    expect(res.body.errors).toContainEqual({ field: 'refreshToken', message: 'is required' });
  });
});

describe('POST /v1/webhooks/brevo', () => {
  it.each([
    ['no body at all', {}],
    ['an empty JSON body', { raw: '', headers: JSON_TYPE }],
  ])('with %s is a 400 naming the body, not an internal field', async (_what, opts) => {
    const res = await http.request('POST', `/v1/webhooks/brevo?token=${SECRET}`, opts);
    expectProblem(res, 400, ['(body)']);
    expect(res.body.errors).toEqual([{ field: '(body)', message: 'is required' }]);
    expect(res.body.detail).not.toMatch(/payload/);
  });

  it('with an event is taken', async () => {
    const res = await http.request('POST', `/v1/webhooks/brevo?token=${SECRET}`, { body: { event: 'hard_bounce', email: 'gone@example.eu' } });
    expect(res.status).toBe(200);
  });
});

describe('GET /v1/privacy/requests/:id/download', () => {
  const download = (query: string) => http.get(`/v1/privacy/requests/${UNKNOWN}/download${query}`, owner.accessToken);

  it('names format when it is neither zip nor json', async () => {
    const res = await download('?format=xml');
    expectProblem(res, 400, ['format']);
    expect(res.body.errors.map((e: { field: string }) => e.field)).toEqual(['format']);
  });

  it('refuses an unknown query parameter, naming it', async () => {
    const res = await download('?format=json&x=1');
    expectProblem(res, 400, ['x']);
    expect(res.body.errors).toEqual([{ field: 'x', message: 'is not a known query parameter' }]);
  });

  it('passes a good query on to privacy (which knows no such request: 404)', async () => {
    for (const query of ['', '?format=zip', '?format=json']) expectProblem(await download(query), 404);
  });
});

describe('request bodies in UTF-8 only', () => {
  it('refuses bytes that are not UTF-8 (a Latin-1 ü) instead of storing U+FFFD in their place', async () => {
    const latin1 = Buffer.concat([Buffer.from('{"name":"M'), Buffer.from([0xfc]), Buffer.from('ller GmbH"}')]);
    const res = await http.request('POST', '/v1/orgs', { raw: latin1, headers: JSON_TYPE, token: owner.accessToken });
    expectProblem(res, 400);
    expect(res.body.detail).toBe('The request body is not valid UTF-8');
  });

  it('refuses another declared charset with 415 and takes UTF-8 however it is written', async () => {
    const body = JSON.stringify({ name: 'Müller Holzbau GmbH' });
    const latin = await http.request('POST', '/v1/orgs', { raw: body, headers: { 'content-type': 'application/json; charset=iso-8859-1' }, token: owner.accessToken });
    expectProblem(latin, 415);
    expect(latin.body.detail).toBe('The request body must be JSON in UTF-8 (charset=utf-8 or no charset)');
    const quoted = await http.request('POST', '/v1/orgs', { raw: body, headers: { 'content-type': 'application/json;charset="UTF-8"' }, token: owner.accessToken });
    expect({ status: quoted.status, name: quoted.body.name }).toEqual({ status: 201, name: 'Müller Holzbau GmbH' });
  });
});

describe('fields far over their limit', () => {
  it('are refused for their length at once: the name patterns never run over 300,000 letters (their time grew with its square)', async () => {
    const res = await http.post('/v1/auth/register', {
      email: 'lang@example.eu',
      password: PASSWORD,
      firstName: 'a'.repeat(300_000),
      lastName: 'B',
      organizationName: 'a-'.repeat(100_000),
    });
    expectProblem(res, 400, ['firstName', 'organizationName']);
    expect(res.body.errors).toEqual([
      { field: 'firstName', message: 'must be at most 100 characters' },
      { field: 'organizationName', message: 'must be at most 120 characters' },
    ]);
  });

  it('refuses a password with an unpaired surrogate, which has no UTF-8 form (every one would hash as U+FFFD)', async () => {
    const res = await http.post('/v1/auth/register', { email: 'surrogat@example.eu', password: 'Kiefernwald am \ud800Morgen', firstName: 'Sur', lastName: 'Rogat' });
    expectProblem(res, 400, ['password']);
    expect(res.body.errors).toEqual([{ field: 'password', message: 'must not contain unpaired surrogates' }]);
    const login = await http.post('/v1/auth/login', { email: 'ronja@example.eu', password: 'Kiefernwald am \udfffMorgen' });
    expectProblem(login, 400, ['password']);
  });
});

describe('answers of a readable size', () => {
  it('names the first 20 of 50,000 unknown fields, and how many more', async () => {
    const body: Record<string, unknown> = { name: 'Vielfeld GmbH' };
    for (let i = 0; i < 50_000; i++) body[`k${i}`] = 1;
    const res = await http.post('/v1/orgs', body, owner.accessToken);
    expectProblem(res, 400);
    expect(res.body.errors).toHaveLength(20);
    expect(res.body.errors[0]).toEqual({ field: 'k0', message: 'is not a known field' });
    expect(res.body.detail).toMatch(/; and 49980 more$/);
  });

  it('refuses a billing month before 2000', async () => {
    const res = await http.get('/v1/billing/usage?workspace=private&period=0000-01', owner.accessToken);
    expectProblem(res, 400, ['period']);
    expect(res.body.errors).toEqual([{ field: 'period', message: 'must be a month as YYYY-MM, from 2000 on' }]);
  });
});
