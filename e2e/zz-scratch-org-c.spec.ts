import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { confirmEmail, lastEvent, type TestEnv } from '@ally/testing';
import { startPlatformWorld, type PlatformWorld } from './platform-world.js';

const PASSWORD = 'Sommerwiese am Fluss 2026';
const log = (...a: unknown[]) => process.stdout.write(a.map((x) => (typeof x === 'string' ? x : JSON.stringify(x))).join(' ') + '\n');

describe('scratch org c', () => {
  let world: PlatformWorld;
  let env: TestEnv;
  let http: PlatformWorld['http'];
  let n = 0;
  const register = async (name: string) => {
    const email = `${name}.${++n}.${Date.now()}@example.eu`;
    const res = await http.post('/v1/auth/register', { email, password: PASSWORD, firstName: 'Jana', lastName: 'Novák', locale: 'en' });
    await confirmEmail(env, res.body.user.id);
    return { email, id: res.body.user.id as string, token: res.body.accessToken as string };
  };
  const invite = async (orgId: string, by: string, email: string, role: string) => {
    const res = await http.post(`/v1/orgs/${orgId}/invitations`, { email, role }, by);
    const ev = await lastEvent<{ invitationId: string; token: string }>(env, 'identity.invitation.created', (e) => e.data.invitationId === res.body.id);
    return ev.data.token;
  };
  beforeAll(async () => {
    world = await startPlatformWorld({ gateway: true, privacy: false });
    ({ env, http } = world);
  }, 120_000);
  afterAll(async () => {
    await world?.close();
  });

  const pollUntilOk = async (f: () => Promise<{ status: number }>) => {
    const t0 = Date.now();
    const statuses: number[] = [];
    for (;;) {
      const s = (await f()).status;
      statuses.push(s);
      if (s < 300 || Date.now() - t0 > 15000) return { ms: Date.now() - t0, first: statuses[0], count: statuses.length, last: s };
    }
  };

  it('joining after a few looks at the organisation', async () => {
    for (const probes of [0, 6]) {
      const owner = await register('o');
      const u = await register('u');
      const org = (await http.post('/v1/orgs', { name: 'Join GmbH' }, owner.token)).body;
      for (let i = 0; i < probes; i++) await http.get(`/v1/conversations?workspace=${org.id}`, u.token);
      const t = await invite(org.id, owner.token, u.email, 'admin');
      // hold the event relay? no: measure
      const acc = await http.post('/v1/invitations/accept', { token: t }, u.token);
      const res = await pollUntilOk(() => http.post('/v1/conversations', { workspace: org.id }, u.token));
      log('probes', probes, 'accept', acc.status, 'conversation create', res);
    }
  });

  it('joining while the event relay is slow (chat replica not yet told)', async () => {
    const owner = await register('o');
    const u = await register('u');
    const org = (await http.post('/v1/orgs', { name: 'Slow GmbH' }, owner.token)).body;
    for (let i = 0; i < 6; i++) await http.get(`/v1/assistants?workspace=${org.id}`, u.token);
    const t = await invite(org.id, owner.token, u.email, 'member');
    // Stop chat's consumer from seeing member.added by delaying: we cannot; instead block identity outbox rows by locking them.
    const acc = await http.post('/v1/invitations/accept', { token: t }, u.token);
    const r = await http.post('/v1/conversations', { workspace: org.id }, u.token);
    const r2 = await http.get(`/v1/models?workspace=${org.id}`, u.token);
    log('slow', acc.status, r.status, r2.status);
  });
});
