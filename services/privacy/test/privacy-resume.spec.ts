import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes, randomUUID } from 'node:crypto';
import { PrivacyRpc, type Actor } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { createTestEnv, lastEvent, waitFor, type TestEnv } from '@ally/testing';
import { privacyService } from '../src/privacy.service.js';
import { FakeServices } from './fake-services.js';

const ENV = {
  PRIVACY_POLL_MS: '50',
  PRIVACY_STEP_TIMEOUT_MS: '1000',
  PRIVACY_RETRY_BASE_MS: '50',
  PRIVACY_STEP_LEASE_MS: '1500',
  PRIVACY_KEK: randomBytes(32).toString('base64'),
};

describe('privacy sagas survive a restart of privacy', () => {
  let env: TestEnv;
  let rpc: RpcClient;
  let fakes: FakeServices;

  beforeAll(async () => {
    env = await createTestEnv();
    rpc = new RpcClient(await env.nats(), env.prefix);
    await rpc.connect();
    fakes = new FakeServices(await env.nats(), env.prefix).listen(['identity', 'chat', 'billing', 'notify']);
  });

  afterAll(async () => {
    fakes?.close();
    await rpc?.close();
    await env?.close();
  });

  it('takes a step back from a privacy instance that died holding it and completes the erasure', async () => {
    const actor: Actor = { userId: randomUUID(), platformRoles: [] };
    // chat takes the request and never answers while the first privacy instance lives.
    let firstLife = true;
    fakes.on('chat', 'erase', () => (firstLife ? 'silence' : { service: 'chat', affected: { 'chat-history': 3 } }));
    const first = await env.start(privacyService, ENV);
    const created = await rpc.call(PrivacyRpc.createRequest, { type: 'erasure' }, { actor });
    await waitFor(async () => fakes.callsTo('chat', 'erase').length > 0, 'chat to be asked');
    const [running] = await env.sql(`SELECT status FROM privacy.request_steps WHERE request_id = $1 AND service = 'chat'`, [created.id]);
    expect(running.status).toBe('running');
    await env.stop(first);
    firstLife = false;

    await env.start(privacyService, ENV);
    const done = await waitFor(async () => {
      const r = await rpc.call(PrivacyRpc.getRequest, { id: created.id }, { actor }).catch(() => null);
      return r === null ? (await env.sql(`SELECT * FROM privacy.requests WHERE id = $1 AND status = 'completed'`, [created.id]))[0] : undefined;
    }, 'the erasure to complete after the restart', 15_000);
    expect(done.user_id).toBeNull();
    expect(fakes.callsTo('identity', 'erase').filter((c) => c.input.userId === actor.userId)).toHaveLength(1);
    const [chat] = await env.sql(`SELECT attempts, result FROM privacy.request_steps WHERE request_id = $1 AND service = 'chat'`, [created.id]);
    expect(chat.result).toEqual({ 'chat-history': 3 });
    expect(chat.attempts).toBeGreaterThanOrEqual(2);
  });

  it('takes over a step whose worker crashed (its lease ran out) and finishes the request', async () => {
    const privacy = await env.start(privacyService, ENV);
    const userId = randomUUID();
    const id = randomUUID();
    fakes.on('chat', 'erase', () => ({ service: 'chat', affected: { 'chat-history': 1 } }));
    // What a replica that died mid-call leaves behind: a running step with an expired lease.
    // One statement, as the service writes a request and its steps in one transaction.
    await env.sql(
      `WITH r AS (INSERT INTO privacy.requests (id, user_id, subject_hash, type, scope, status, due_at) VALUES ($1, $2, 'x', 'erasure', 'private', 'in_progress', now() + interval '1 month') RETURNING id)
       INSERT INTO privacy.request_steps (request_id, service, action, phase, status, attempts, lease_until)
       SELECT r.id, s.service, 'erase', s.phase, s.status, s.attempts, s.lease FROM r,
         (VALUES ('chat', 0, 'running', 1, now() - interval '1 second'), ('identity', 1, 'pending', 0, NULL::timestamptz)) AS s (service, phase, status, attempts, lease)`,
      [id, userId],
    );
    await waitFor(async () => (await env.sql(`SELECT 1 FROM privacy.requests WHERE id = $1 AND status = 'completed'`, [id])).length > 0, 'the orphaned request to complete');
    const steps = await env.sql(`SELECT service, attempts, status FROM privacy.request_steps WHERE request_id = $1 ORDER BY service`, [id]);
    expect(steps).toEqual([
      { service: 'chat', attempts: 2, status: 'completed' },
      { service: 'identity', attempts: 1, status: 'completed' },
    ]);
    await env.stop(privacy);
  });

  it('warns compliance once when an open request nears its due date', async () => {
    const privacy = await env.start(privacyService, { ...ENV, PRIVACY_ESCALATE_DAYS_BEFORE: '31' });
    const actor: Actor = { userId: randomUUID(), platformRoles: [] };
    fakes.on('billing', 'export', () => 'silence');
    const created = await rpc.call(PrivacyRpc.createRequest, { type: 'access' }, { actor });
    const event = await lastEvent(env, 'privacy.request.escalated', (e: any) => e.data.requestId === created.id);
    expect(event.data).toMatchObject({ reason: 'due-soon', type: 'access', dueAt: created.dueAt });
    expect(JSON.stringify(event)).not.toContain(actor.userId);
    const view = await rpc.call(PrivacyRpc.getRequest, { id: created.id }, { actor });
    expect(view.escalatedAt).not.toBeNull();
    await env.stop(privacy);
  });
});
