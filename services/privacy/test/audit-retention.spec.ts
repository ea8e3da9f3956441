import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes, randomUUID } from 'node:crypto';
import { PrivacyRpc, type Actor } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { createTestEnv, waitFor, type RunningService, type TestEnv } from '@ally/testing';
import { entryHash, GENESIS_HASH } from '../src/audit/audit-trail.service.js';
import { privacyService } from '../src/privacy.service.js';
import { FakeServices } from './fake-services.js';

const compliance: Actor = { userId: randomUUID(), platformRoles: ['compliance'] };

/** The audit trail keeps no more than it needs: old entries go, and what is left still verifies from an anchor. */
describe("the audit trail's retention", () => {
  let env: TestEnv;
  let privacy: RunningService;
  let rpc: RpcClient;
  let fakes: FakeServices;

  beforeAll(async () => {
    env = await createTestEnv();
    privacy = await env.start(privacyService, { PRIVACY_POLL_MS: '50', PRIVACY_KEK: randomBytes(32).toString('base64'), RETENTION_RUNNER: 'in-process' });
    rpc = new RpcClient(await env.nats(), env.prefix);
    await rpc.connect();
    // identity, as far as privacy asks it: whether a held user has an account.
    fakes = new FakeServices(await env.nats(), env.prefix).listen(['identity'], ['subject']);
  });

  afterAll(async () => {
    fakes?.close();
    await rpc?.close();
    await env?.close();
  });

  const run = async (dryRun: boolean) => {
    const { id } = await rpc.call(PrivacyRpc.startRetentionRun, { dryRun, categories: ['audit-trail'] }, { actor: compliance });
    return waitFor(async () => {
      const r = await rpc.call(PrivacyRpc.getRetentionRun, { id }, { actor: compliance });
      return r.finishedAt ? r : undefined;
    }, 'the retention run');
  };
  const verify = () => privacyService.commands!['verify-audit'](privacy.app, []);

  /** Entries written `ageDays` ago, as if: the chain is linked anew over the changed times. */
  const age = async (ageDays: Record<number, number>) => {
    let prev = GENESIS_HASH;
    for (const r of await env.sql(`SELECT * FROM privacy.audit_log ORDER BY seq`)) {
      const seq = Number(r.seq);
      const at = ageDays[seq] === undefined ? new Date(r.at).toISOString() : new Date(Date.now() - ageDays[seq] * 86_400_000).toISOString();
      const hash = entryHash(prev, { seq, at, actor: r.actor, action: r.action, requestId: r.request_id, subjectHash: r.subject_hash, details: r.details });
      await env.sql(`UPDATE privacy.audit_log SET at = $2, prev_hash = $3, hash = $4 WHERE seq = $1`, [seq, at, prev, hash]);
      prev = hash;
    }
  };

  it('deletes entries past 3 years from the start of the chain up to the first one still needed, and the rest verifies from the anchor', async () => {
    expect((await rpc.call(PrivacyRpc.listRetentionPolicies, {}, { actor: compliance })).data.find((p) => p.category === 'audit-trail')).toMatchObject({ retentionDays: 3 * 365 });
    for (const retentionDays of [20, 25, 30]) await rpc.call(PrivacyRpc.updateRetentionPolicies, { service: 'identity', category: 'sessions', retentionDays }, { actor: compliance });
    // A legal hold still active: its entry stays, and so does every entry after it.
    await rpc.call(PrivacyRpc.createLegalHold, { userId: randomUUID(), reason: 'litigation 2023-4' }, { actor: compliance });
    await rpc.call(PrivacyRpc.updateRetentionPolicies, { service: 'identity', category: 'sessions', retentionDays: 30 }, { actor: compliance });
    const seqs = (await env.sql<{ seq: string; action: string }>(`SELECT seq, action FROM privacy.audit_log ORDER BY seq`)).map((r) => [Number(r.seq), r.action] as const);
    expect(seqs.map(([, action]) => action)).toEqual(['retention-policy.updated', 'retention-policy.updated', 'retention-policy.updated', 'legal-hold.placed', 'retention-policy.updated']);
    await age({ 1: 1200, 2: 1150, 3: 1100, 4: 1100, 5: 1100 });
    const anchor = (await env.sql(`SELECT hash FROM privacy.audit_log WHERE seq = 3`))[0].hash;
    expect(await verify()).toMatch(/^audit trail intact: 5 entries/);

    expect((await run(true)).results).toEqual([{ service: 'privacy', category: 'audit-trail', affected: 3 }]);
    expect((await run(false)).results).toEqual([{ service: 'privacy', category: 'audit-trail', affected: 3 }]);
    expect((await env.sql(`SELECT min(seq)::int AS first FROM privacy.audit_log`))[0].first).toBe(4);
    expect(await env.sql(`SELECT seq::int AS seq, hash FROM privacy.audit_anchor`)).toEqual([{ seq: 3, hash: anchor }]);
    // The runs' own entries went on the chain after the purge; all of it checks out from the anchor.
    expect(await verify()).toMatch(/^audit trail intact: \d+ entries/);

    // Losing an entry after the anchor still shows.
    await env.sql(`DELETE FROM privacy.audit_log WHERE seq = 4`);
    expect(await verify()).toMatch(/^audit trail BROKEN at entry 4: entry 4 is missing/);
    process.exitCode = 0;
  });
});
