import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { decodeProtectedHeader, exportJWK, generateKeyPair } from 'jose';
import { randomBytes, randomUUID } from 'node:crypto';
import { gatewayService } from '@ally/gateway';
import { identityService } from '@ally/identity';
import { createTestEnv, httpClient, waitFor, type RunningService, type TestEnv } from '@ally/testing';

const PASSWORD = 'Leuchtturm an der Ostsee';

describe('signing key rotation', () => {
  let env: TestEnv;
  let identity: RunningService;
  let http: ReturnType<typeof httpClient>;
  // A new key signs at once here (the tests are about what else happens); the last test waits for it.
  const KEK = { IDENTITY_KEK: randomBytes(32).toString('base64'), SIGNING_KEY_PUBLISH_AHEAD_SECONDS: '0' };

  beforeAll(async () => {
    env = await createTestEnv();
    identity = await env.start(identityService, KEK);
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
    const replica = await env.start(identityService, KEK);
    await expect(identityService.commands!['rotate-signing-key'](replica.app, [])).resolves.toMatch(/^new signing key /);
    await env.stop(identity);
    identity = replica;

    const after = (await http.post('/v1/auth/login', { email: 'tove@example.eu', password: PASSWORD })).body.accessToken;
    expect(decodeProtectedHeader(after).kid).not.toBe(decodeProtectedHeader(before).kid);
    expect((await http.get('/v1/me', after)).status).toBe(200);
    expect((await http.get('/v1/me', before)).status).toBe(200);
    const jwks = (await http.get('/.well-known/jwks.json')).body;
    expect(jwks.keys.map((k: { kid: string }) => k.kid)).toEqual([decodeProtectedHeader(after).kid, decodeProtectedHeader(before).kid]);
  });

  it('keeps private keys only sealed under IDENTITY_KEK, seals rows from before at start, and refuses a KEK that does not open them', async () => {
    const clear = await env.sql(`SELECT kid FROM identity.signing_keys WHERE private_jwk IS NOT NULL OR private_jwk_sealed IS NULL`);
    expect(clear).toEqual([]);

    // A key written in the clear, as before sealing (the newest, so it signs next).
    const { privateKey, publicKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
    const kid = randomUUID();
    const privateJwk = { ...(await exportJWK(privateKey)), kid, alg: 'EdDSA' };
    await env.sql(
      `INSERT INTO identity.signing_keys (kid, alg, public_jwk, private_jwk, created_at) VALUES ($1, 'EdDSA', $2, $3, now() + interval '1 second')`,
      [kid, { ...(await exportJWK(publicKey)), kid, alg: 'EdDSA', use: 'sig' }, privateJwk],
    );
    const restarted = await env.start(identityService, KEK);
    await env.stop(identity); // it read the keys before the clear one came
    const [row] = await env.sql<{ private_jwk: unknown; sealed: Buffer }>(`SELECT private_jwk, private_jwk_sealed AS sealed FROM identity.signing_keys WHERE kid = $1`, [kid]);
    expect(row.private_jwk).toBeNull();
    expect(row.sealed.includes(Buffer.from(privateJwk.d!))).toBe(false);
    const token = (await http.post('/v1/auth/login', { email: 'tove@example.eu', password: PASSWORD })).body.accessToken;
    expect(decodeProtectedHeader(token).kid).toBe(kid);
    expect((await http.get('/v1/me', token)).status).toBe(200);
    await env.stop(restarted);

    await expect(env.start(identityService, { IDENTITY_KEK: randomBytes(32).toString('base64') })).rejects.toThrow(`IDENTITY_KEK does not open signing key ${kid}`);
  });
  it('withdraws every older key at once after a suspected leak: no replica signs with it again, and no gateway verifies its tokens', async () => {
    const first = await env.start(identityService, KEK);
    // Its own refresh comes only each minute: identity's word that the keys changed is what makes it fetch them now.
    const gateway = httpClient((await env.start(gatewayService)).url);
    const before = (await gateway.post('/v1/auth/login', { email: 'tove@example.eu', password: PASSWORD })).body.accessToken;
    expect((await gateway.get('/v1/me', before)).status).toBe(200);
    const withdrawn = decodeProtectedHeader(before).kid;

    const replica = await env.start(identityService, KEK);
    await expect(identityService.commands!['rotate-signing-key'](replica.app, ['--everything'])).rejects.toThrow('usage: rotate-signing-key [--withdraw-old]');
    await expect(identityService.commands!['rotate-signing-key'](replica.app, ['--withdraw-old'])).resolves.toMatch(/every older key is withdrawn/);
    await waitFor(async () => (await gateway.get('/v1/me', before)).status === 401, 'the old token to stop verifying', 5_000);
    const jwks = (await gateway.get('/.well-known/jwks.json')).body;
    expect(jwks.keys.map((k: { kid: string }) => k.kid)).not.toContain(withdrawn);

    // Whichever of the three replicas answers a sign-in, it signs with the new key, and the gateway knows it.
    for (let i = 0; i < 6; i++) {
      const after = (await gateway.post('/v1/auth/login', { email: 'tove@example.eu', password: PASSWORD })).body.accessToken;
      expect(decodeProtectedHeader(after).kid).not.toBe(withdrawn);
      expect((await gateway.get('/v1/me', after)).status).toBe(200);
    }
    await env.stop(first);
    await env.stop(replica);
  });

  it('publishes a new key before it signs with it, so no replica or gateway meets a token of a key it does not know yet', async () => {
    const ahead = await env.start(identityService, { ...KEK, SIGNING_KEY_PUBLISH_AHEAD_SECONDS: '2' });
    const gateway = httpClient((await env.start(gatewayService)).url);
    const before = (await gateway.post('/v1/auth/login', { email: 'tove@example.eu', password: PASSWORD })).body.accessToken;
    await identityService.commands!['rotate-signing-key'](ahead.app, []);
    const newKid = (await gateway.get('/.well-known/jwks.json')).body.keys[0].kid as string;
    expect(newKid).not.toBe(decodeProtectedHeader(before).kid);
    // Published, not yet used: tokens still come from the key everyone knows.
    const meanwhile = (await gateway.post('/v1/auth/login', { email: 'tove@example.eu', password: PASSWORD })).body.accessToken;
    expect(decodeProtectedHeader(meanwhile).kid).toBe(decodeProtectedHeader(before).kid);
    await new Promise((r) => setTimeout(r, 2_200));
    const later = (await gateway.post('/v1/auth/login', { email: 'tove@example.eu', password: PASSWORD })).body.accessToken;
    expect(decodeProtectedHeader(later).kid).toBe(newKid);
    expect((await gateway.get('/v1/me', later)).status).toBe(200);
    expect((await gateway.get('/v1/me', meanwhile)).status).toBe(200);
    await env.stop(ahead);
  });
});
