import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes, randomUUID } from 'node:crypto';
import { PrivacyRpc, type Actor } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { createTestEnv, waitFor, type RunningService, type TestEnv } from '@ally/testing';
import { privacyService } from '../src/index.js';
import { FakeServices } from './fake-services.js';

const FAST = {
  PRIVACY_POLL_MS: '50',
  PRIVACY_STEP_TIMEOUT_MS: '400',
  PRIVACY_RETRY_BASE_MS: '50',
  PRIVACY_RETRY_MAX_MS: '200',
  PRIVACY_STEP_LEASE_MS: '1500',
  PRIVACY_KEK: randomBytes(32).toString('base64'),
  PRIVACY_SUBJECT_SALT: 'a-test-salt-of-sufficient-length',
  RETENTION_RUNNER: 'in-process',
};
const user = (): Actor => ({ userId: randomUUID(), platformRoles: [] });
const compliance: Actor = { userId: randomUUID(), platformRoles: ['compliance'] };

/** What an erasure does to the subject's other requests, and what a lifted restriction stops holding. */
describe('where requests end', () => {
  let env: TestEnv;
  let privacy: RunningService;
  let rpc: RpcClient;
  let fakes: FakeServices;

  beforeAll(async () => {
    env = await createTestEnv();
    privacy = await env.start(privacyService, FAST);
    rpc = new RpcClient(await env.nats(), env.prefix);
    await rpc.connect();
    fakes = new FakeServices(await env.nats(), env.prefix).listen(['identity', 'chat', 'billing', 'notify']);
  });

  afterAll(async () => {
    fakes?.close();
    await rpc?.close();
    await env?.close();
  });

  const request = (actor: Actor, type: 'access' | 'erasure' | 'restriction', scope = 'all') => rpc.call(PrivacyRpc.createRequest, { type, scope }, { actor });
  const retentionRun = async () => {
    const { id } = await rpc.call(PrivacyRpc.startRetentionRun, { dryRun: true }, { actor: compliance });
    await waitFor(async () => ((await rpc.call(PrivacyRpc.getRetentionRun, { id }, { actor: compliance })).finishedAt ? true : undefined), 'the retention run');
    return fakes.callsTo('chat', 'retention').at(-1)!.input as { heldUserIds: string[] };
  };

  it('ends the subject’s other open requests as failed, audited, when their erasure completes', async () => {
    const subject = user();
    // chat's export does not answer for this subject: the access request is still open when the erasure finishes.
    fakes.on('chat', 'export', (input) => (input.userId === subject.userId ? 'silence' : { service: 'chat', categories: {} }));
    const access = await request(subject, 'access');
    await waitFor(async () => (await env.sql(`SELECT 1 FROM privacy.request_steps WHERE request_id = $1 AND service = 'chat' AND attempts >= 1`, [access.id])).length > 0, 'the export tried');
    const erasure = await request(subject, 'erasure');
    await waitFor(async () => (await env.sql(`SELECT 1 FROM privacy.requests WHERE id = $1 AND status = 'completed'`, [erasure.id])).length > 0, 'the erasure', 20_000);
    const [row] = await env.sql(`SELECT status, user_id, failure FROM privacy.requests WHERE id = $1`, [access.id]);
    expect(row).toEqual({ status: 'failed', user_id: null, failure: expect.stringContaining('erased') });
    expect(await env.sql(`SELECT 1 FROM privacy.request_steps WHERE request_id = $1 AND status IN ('pending', 'running')`, [access.id])).toEqual([]);
    expect(await env.sql(`SELECT 1 FROM privacy.audit_log WHERE request_id = $1 AND action = 'request.failed'`, [access.id])).toHaveLength(1);
    fakes.on('chat', 'export', () => ({ service: 'chat', categories: {} }));
  });

  it('holds a subject from retention while their restriction stands, and no longer once it is lifted', async () => {
    const subject = user();
    const restriction = await request(subject, 'restriction');
    await waitFor(async () => (await env.sql(`SELECT 1 FROM privacy.requests WHERE id = $1 AND status = 'completed'`, [restriction.id])).length > 0, 'the restriction');
    expect((await retentionRun()).heldUserIds).toContain(subject.userId);
    await rpc.call(PrivacyRpc.decide, { id: restriction.id, decision: 'lift', reason: 'accuracy verified' }, { actor: compliance });
    expect((await retentionRun()).heldUserIds).not.toContain(subject.userId);
  });
});
