import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { decodeProtectedHeader } from 'jose';
import { gatewayService } from '@ally/gateway';
import { identityService } from '@ally/identity';
import { createTestEnv, httpClient, type RunningService, type TestEnv } from '@ally/testing';

const PASSWORD = 'Leuchtturm an der Ostsee';

describe('signing key rotation', () => {
  let env: TestEnv;
  let identity: RunningService;
  let http: ReturnType<typeof httpClient>;

  beforeAll(async () => {
    env = await createTestEnv();
    identity = await env.start(identityService);
    http = httpClient((await env.start(gatewayService)).url);
  });

  afterAll(async () => {
    await env?.close();
  });

  it('keeps old tokens valid and lets the gateway learn the new key on first sight', async () => {
    await http.post('/v1/auth/register', { email: 'tove@example.eu', password: PASSWORD, firstName: 'Tove', lastName: 'Lindqvist' });
    const before = (await http.post('/v1/auth/login', { email: 'tove@example.eu', password: PASSWORD })).body.accessToken;
    expect((await http.get('/v1/me', before)).status).toBe(200);

    // An operator rotates the key on a second replica; the first one leaves.
    const replica = await env.start(identityService);
    await expect(identityService.commands!['rotate-signing-key'](replica.app, [])).resolves.toMatch(/^new signing key /);
    await env.stop(identity);

    const after = (await http.post('/v1/auth/login', { email: 'tove@example.eu', password: PASSWORD })).body.accessToken;
    expect(decodeProtectedHeader(after).kid).not.toBe(decodeProtectedHeader(before).kid);
    expect((await http.get('/v1/me', after)).status).toBe(200);
    expect((await http.get('/v1/me', before)).status).toBe(200);
    const jwks = (await http.get('/.well-known/jwks.json')).body;
    expect(jwks.keys.map((k: { kid: string }) => k.kid)).toEqual([decodeProtectedHeader(after).kid, decodeProtectedHeader(before).kid]);
  });
});
