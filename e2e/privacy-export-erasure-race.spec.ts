import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes, randomUUID } from 'node:crypto';
import { privacyService } from '@ally/privacy';
import { confirmEmail, waitFor, type TestEnv } from '@ally/testing';
import { PRIVACY_TEST_ENV, startPlatformWorld, type PlatformWorld } from './platform-world.js';

const PASSWORD = 'Leuchtturm am Deich bei Ebbe';
const KEK = randomBytes(32).toString('base64');
const PRIVACY = { PRIVACY_KEK: KEK, PRIVACY_STEP_TIMEOUT_MS: '30000' };

/**
 * An export collects each service's part while other requests of the subject
 * run: an erasure that completes while a part is being read has that part
 * read again, so the package never holds what was erased before it was built.
 */
describe('an export step in flight when an overlapping erasure completes', () => {
  let world: PlatformWorld;
  let env: TestEnv;
  let http: PlatformWorld['http'];

  beforeAll(async () => {
    world = await startPlatformWorld({ gateway: true, privacy: PRIVACY });
    ({ env, http } = world);
    // A second replica, as production runs them: one is busy with the slow export, the other takes the erasure.
    await env.start(privacyService, { ...PRIVACY_TEST_ENV, ...PRIVACY });
  });
  afterAll(async () => {
    await world?.close();
  });

  it("reads the part again: the package holds none of the erased chat messages chat had read already", async () => {
    const email = `wiebke-${randomUUID().slice(0, 8)}@example.eu`;
    const reg = await http.post('/v1/auth/register', { email, password: PASSWORD, firstName: 'Wiebke', lastName: 'Wattläufer', locale: 'de' });
    expect(reg.status).toBe(201);
    await confirmEmail(env, reg.body.user.id);
    const token = reg.body.accessToken as string;
    const c = (await http.post('/v1/conversations', { workspace: 'private', title: 'Watt' }, token)).body;
    expect((await http.post(`/v1/conversations/${c.id}/messages`, { content: 'Geheimnis Wattenmeer Priel' }, token)).status).toBe(201);

    // Holds chat's export in the middle of its first page (after it read the messages, before it answers).
    const lock = await env.connect();
    await lock.query('BEGIN');
    await lock.query('LOCK TABLE chat.user_settings IN ACCESS EXCLUSIVE MODE');
    let released = false;
    try {
      const access = (await http.post('/v1/privacy/requests', { type: 'access', scope: 'private' }, token)).body;
      await waitFor(
        async () => ((await env.sql(`SELECT 1 FROM privacy.request_steps WHERE request_id = $1 AND service = 'chat' AND status = 'running'`, [access.id])).length ? true : undefined),
        'the chat export step to run',
        10_000,
      );
      await new Promise((r) => setTimeout(r, 500));
      const erasure = (await http.post('/v1/privacy/requests', { type: 'erasure', scope: 'private' }, token)).body;
      expect(erasure.status).toBe('received');
      const erased = await waitFor(async () => {
        const r = await http.get(`/v1/privacy/requests/${erasure.id}`, token);
        return r.body.status === 'completed' || r.body.status === 'failed' ? r.body : undefined;
      }, 'the erasure', 20_000);
      expect(erased.status).toBe('completed');
      expect(await env.sql(`SELECT 1 FROM chat.conversations WHERE id = $1`, [c.id])).toEqual([]);
      await lock.query('COMMIT');
      released = true;
      const done = await waitFor(async () => {
        const r = await http.get(`/v1/privacy/requests/${access.id}`, token);
        return r.body.status === 'completed' || r.body.status === 'failed' ? r.body : undefined;
      }, 'the export', 30_000);
      expect(done.status).toBe('completed');
      const files = (await http.get(`/v1/privacy/requests/${access.id}/download?format=json`, token)).body.files;
      // The erasure completed before this package was built: what it erased must not be in it.
      expect(JSON.stringify(files)).not.toContain('Geheimnis Wattenmeer Priel');
      expect(files['data/chat.json']).toBeDefined();
    } finally {
      if (!released) await lock.query('ROLLBACK').catch(() => undefined);
      await lock.end();
    }
  });
});
