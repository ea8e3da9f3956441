import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { identityService } from '@ally/identity';
import { lastEvent, waitFor } from '@ally/testing';
import { startChatWorld, type ChatWorld } from './chat-world.js';
import { expectProblem } from './problem-assertions.js';

const PASSWORD = 'Nebel über der Elbe';

describe('chat while identity cannot be reached', () => {
  let world: ChatWorld;

  beforeAll(async () => {
    world = await startChatWorld();
  });

  afterAll(async () => {
    await world?.close();
  });

  it("answers 503 for an organisation its replica does not know yet, not a 404 that calls the caller's own organisation unknown, and serves it once identity is back", async () => {
    const { http, env } = world;
    const reg = await http.post('/v1/auth/register', { email: 'olga@example.eu', password: PASSWORD, firstName: 'Olga', lastName: 'Ost' });
    const token: string = reg.body.accessToken;
    const org = (await http.post('/v1/orgs', { name: 'Ost & Söhne KG' }, token)).body;
    const conversation = await waitFor(async () => (await http.post('/v1/conversations', { workspace: org.id }, token)).body.id as string | undefined, 'the organisation to reach chat');
    // As if the membership event were still on its way when identity went away (once it came, so it cannot come after).
    const added = await lastEvent(env, 'identity.member.added', (e: { data: { orgId: string } }) => e.data.orgId === org.id);
    await waitFor(async () => (await env.sql(`SELECT 1 FROM chat.inbox WHERE event_id = $1`, [added.id])).length > 0 || undefined, 'chat to have read the membership event');
    await env.sql(`DELETE FROM chat.memberships WHERE org_id = $1`, [org.id]);
    await env.stop(world.identity);
    try {
      for (let i = 0; i < 7; i++) {
        const res = await http.get(`/v1/conversations?workspace=${org.id}`, token);
        expectProblem(res, 503);
        expect(res.body.detail).toMatch(/identity service did not answer/);
        expect(res.headers.get('retry-after')).toBe('5');
      }
      expectProblem(await http.get(`/v1/conversations/${conversation}`, token), 503);
      // The private workspace goes on (EU-only, as the replica holds nothing else).
      expect((await http.get('/v1/conversations?workspace=private', token)).status).toBe(200);
    } finally {
      world.identity = await env.start(identityService);
    }
    // Back: asked again at once (the failures were no misses), and the organisation is the caller's.
    expect((await http.get(`/v1/conversations?workspace=${org.id}`, token)).status).toBe(200);
    expect((await http.get(`/v1/conversations/${conversation}`, token)).status).toBe(200);
  });
});
