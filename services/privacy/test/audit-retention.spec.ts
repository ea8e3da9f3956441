import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes, randomUUID } from 'node:crypto';
import { PrivacyRpc, type Actor } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { createTestEnv, waitFor, type RunningService, type TestEnv } from '@ally/testing';
import { AuditTrail, GENESIS_HASH, unkeyedEntryHash } from '../src/audit/audit-trail.service.js';
import { privacyService } from '../src/privacy.service.js';
import { FakeServices } from './fake-services.js';

const compliance: Actor = { userId: randomUUID(), platformRoles: ['compliance'] };

/** A privacy service of its own (each chain starts empty), with identity answering whether a held user exists. */
function privacyWorld() {
  const w = {} as { env: TestEnv; privacy: RunningService; rpc: RpcClient; fakes: FakeServices };

  beforeAll(async () => {
    w.env = await createTestEnv();
    w.privacy = await w.env.start(privacyService, { PRIVACY_POLL_MS: '50', PRIVACY_KEK: randomBytes(32).toString('base64'), RETENTION_RUNNER: 'in-process' });
    w.rpc = new RpcClient(await w.env.nats(), w.env.prefix);
    await w.rpc.connect();
    w.fakes = new FakeServices(await w.env.nats(), w.env.prefix).listen(['identity'], ['subject']);
  });

  afterAll(async () => {
    w.fakes?.close();
    await w.rpc?.close();
    await w.env?.close();
  });

  const run = async (dryRun: boolean, categories = ['audit-trail']) => {
    const { id } = await w.rpc.call(PrivacyRpc.startRetentionRun, { dryRun, categories }, { actor: compliance });
    return waitFor(async () => {
      const r = await w.rpc.call(PrivacyRpc.getRetentionRun, { id }, { actor: compliance });
      return r.finishedAt ? r : undefined;
    }, 'the retention run');
  };

  /**
   * The chain linked anew from its start, as privacy would have written it: entries written `ageDays` ago, as if,
   * and hashed as the trail was before it was keyed where `unkeyed` says so.
   */
  const relink = async (ageDays: Record<number, number>, unkeyed: (seq: number) => boolean = () => false) => {
    let prev = GENESIS_HASH;
    for (const r of await w.env.sql(`SELECT * FROM privacy.audit_log ORDER BY seq`)) {
      const seq = Number(r.seq);
      const at = ageDays[seq] === undefined ? new Date(r.at).toISOString() : new Date(Date.now() - ageDays[seq] * 86_400_000).toISOString();
      const entry = { seq, at, actor: r.actor, action: r.action, requestId: r.request_id, subjectHash: r.subject_hash, details: r.details };
      const hash = unkeyed(seq) ? unkeyedEntryHash(prev, entry) : w.privacy.app.get(AuditTrail).hashOf(prev, entry);
      await w.env.sql(`UPDATE privacy.audit_log SET at = $2, prev_hash = $3, hash = $4 WHERE seq = $1`, [seq, at, prev, hash]);
      prev = hash;
    }
  };
  const age = (ageDays: Record<number, number>) => relink(ageDays);
  const command = (name: string) => privacyService.commands![name](w.privacy.app, []);
  return { w, run, age, relink, command, verify: () => command('verify-audit') };
}

/** The audit trail keeps no more than it needs: old entries go, and what is left still verifies from an anchor. */
describe("the audit trail's retention", () => {
  const { w, run, age, verify } = privacyWorld();

  it('deletes entries past 3 years from the start of the chain up to the first one still needed, and the rest verifies from the anchor', async () => {
    expect((await w.rpc.call(PrivacyRpc.listRetentionPolicies, {}, { actor: compliance })).data.find((p) => p.category === 'audit-trail')).toMatchObject({ retentionDays: 3 * 365 + 1 });
    // Nobody shortens the proof of what was done, nor what it documents (one officer could have cut the trail to a day).
    for (const category of ['audit-trail', 'data-subject-requests', 'legal-holds', 'erasure-tombstones']) {
      await expect(w.rpc.call(PrivacyRpc.updateRetentionPolicies, { service: 'privacy', category, retentionDays: 1 }, { actor: compliance })).rejects.toMatchObject({ status: 422 });
    }
    for (const retentionDays of [20, 25, 30]) await w.rpc.call(PrivacyRpc.updateRetentionPolicies, { service: 'identity', category: 'sessions', retentionDays }, { actor: compliance });
    // A legal hold still active: its entry stays, and so does every entry after it.
    await w.rpc.call(PrivacyRpc.createLegalHold, { userId: randomUUID(), reason: 'litigation 2023-4' }, { actor: compliance });
    await w.rpc.call(PrivacyRpc.updateRetentionPolicies, { service: 'identity', category: 'sessions', retentionDays: 30 }, { actor: compliance });
    const seqs = (await w.env.sql<{ seq: string; action: string }>(`SELECT seq, action FROM privacy.audit_log ORDER BY seq`)).map((r) => [Number(r.seq), r.action] as const);
    expect(seqs.map(([, action]) => action)).toEqual(['retention-policy.updated', 'retention-policy.updated', 'retention-policy.updated', 'legal-hold.placed', 'retention-policy.updated']);
    await age({ 1: 1200, 2: 1150, 3: 1100, 4: 1100, 5: 1100 });
    const anchor = (await w.env.sql(`SELECT hash FROM privacy.audit_log WHERE seq = 3`))[0].hash;
    expect(await verify()).toMatch(/^audit trail intact: 5 entries/);

    expect((await run(true)).results).toEqual([{ service: 'privacy', category: 'audit-trail', affected: 3 }]);
    expect((await run(false)).results).toEqual([{ service: 'privacy', category: 'audit-trail', affected: 3 }]);
    expect((await w.env.sql(`SELECT min(seq)::int AS first FROM privacy.audit_log`))[0].first).toBe(4);
    expect(await w.env.sql(`SELECT seq::int AS seq, hash FROM privacy.audit_anchor`)).toEqual([{ seq: 3, hash: anchor }]);
    // The runs' own entries went on the chain after the purge; all of it checks out from the anchor.
    expect(await verify()).toMatch(/^audit trail intact: \d+ entries/);

    // Losing an entry after the anchor still shows.
    await w.env.sql(`DELETE FROM privacy.audit_log WHERE seq = 4`);
    expect(await verify()).toMatch(/^audit trail BROKEN at entry 4: entry 4 is missing/);
    process.exitCode = 0;
    // …and no purge seals over it, however old what follows the gap is.
    await w.env.sql(`UPDATE privacy.audit_log SET at = now() - interval '1200 days'`);
    const left = await w.env.sql(`SELECT count(*)::int AS n FROM privacy.audit_log`);
    const refused = await run(false, ['audit-trail']);
    expect(refused.status).toBe('failed');
    expect(JSON.stringify(refused)).toMatch(/does not check out at entry 4: nothing of it is purged/);
    // Every old entry is still there (what the failed run recorded itself is new).
    expect(await w.env.sql(`SELECT count(*)::int AS n FROM privacy.audit_log WHERE at < now() - interval '1000 days'`)).toEqual(left);
  });
});

describe("a dry run of the audit trail's retention", () => {
  const { w, run, age } = privacyWorld();

  it('counts what the real run deletes: entries of requests the same run deletes first go too', async () => {
    const request = randomUUID();
    await w.env.sql(
      `INSERT INTO privacy.requests (id, user_id, subject_hash, type, scope, status, due_at, completed_at) VALUES ($1, $2, 'h-old', 'access', 'all', 'completed', now() - interval '4 years', now() - interval '4 years')`,
      [request, randomUUID()],
    );
    for (const seq of [1, 2, 3]) {
      await w.env.sql(`INSERT INTO privacy.audit_log (seq, at, actor, action, request_id, subject_hash, details, prev_hash, hash) VALUES ($1, now(), 'system', 'request.step-completed', $2, 'h-old', '{}', '', '')`, [seq, request]);
    }
    await age({ 1: 1500, 2: 1500, 3: 1500 });
    const categories = ['data-subject-requests', 'audit-trail'];
    // Listed by category; the real run deletes the requests first.
    const expected = [
      { service: 'privacy', category: 'audit-trail', affected: 3 },
      { service: 'privacy', category: 'data-subject-requests', affected: 1 },
    ];
    expect((await run(true, categories)).results).toEqual(expected);
    expect((await run(false, categories)).results).toEqual(expected);
  });
});

describe('an audit trail begun before it was keyed (key-audit, once every replica runs with the key)', () => {
  const { w, relink, command, verify } = privacyWorld();
  const update = (retentionDays: number) => w.rpc.call(PrivacyRpc.updateRetentionPolicies, { service: 'identity', category: 'sessions', retentionDays }, { actor: compliance });
  const entry = async (seq: number) => {
    const [r] = await w.env.sql(`SELECT * FROM privacy.audit_log WHERE seq = $1`, [seq]);
    return { seq, at: new Date(r.at).toISOString(), actor: r.actor, action: r.action, requestId: r.request_id, subjectHash: r.subject_hash, details: r.details, prevHash: r.prev_hash, hash: r.hash };
  };
  const verifyWith = (args: string[]) => privacyService.commands!['verify-audit'](w.privacy.app, args);

  it('goes on the old way until key-audit, keeps its entries of before as they are, keys every entry after, and checks a kept head', async () => {
    for (const retentionDays of [10, 15, 20, 25]) await update(retentionDays);
    // The trail as the release before wrote it (plain sha256); its head is kept outside the database before the upgrade.
    await relink({}, () => true);
    const kept = (await entry(4)).hash;
    expect(await verify()).toMatch(/^audit trail intact: 4 entries, head [0-9a-f]{64}\nNOT keyed: run key-audit/);
    expect(process.exitCode).toBe(1);
    process.exitCode = 0;
    // A replica of this release writes the old way meanwhile (one of before, still running in the rollout, does too).
    await update(28);
    const fifth = await entry(5);
    expect(fifth.hash).toBe(unkeyedEntryHash(fifth.prevHash, fifth));

    // Only with the head kept before the upgrade, and only if it is in the trail (one written anew would not hold it).
    const keyAudit = (args: string[]) => privacyService.commands!['key-audit'](w.privacy.app, args);
    await expect(keyAudit([])).rejects.toThrow(/^usage: key-audit --head <hash>/);
    await expect(keyAudit([`--head=${kept}`])).rejects.toThrow(/^usage: key-audit --head <hash>/);
    await expect(verifyWith(['--hed', kept])).rejects.toThrow(/^usage: verify-audit \[--head <hash>\]/);
    expect(await keyAudit(['--head', 'a'.repeat(64)])).toBe(`audit trail not keyed: the head ${'a'.repeat(64)} is not in the checked chain`);
    process.exitCode = 0;
    expect(await keyAudit(['--head', kept])).toMatch(/^audit trail keyed from entry 6, head [0-9a-f]{64}\nthe first 5 entries \(to entry 5\) were written before the trail was keyed/);
    await update(12);
    expect(w.privacy.app.get(AuditTrail).isKeyed(await entry(7))).toBe(true);
    expect(await verifyWith(['--head', kept])).toMatch(new RegExp(`^audit trail intact: 7 entries, head [0-9a-f]{64}\nthe first 5 entries .*\nthe head ${kept} is entry 4: the chain from the anchor to it is as it was then$`));
    expect(await keyAudit(['--head', kept])).toMatch(/^audit trail keyed already: 7 entries/);
    expect(process.exitCode ?? 0).toBe(0);

    // Whoever can write the table but lacks the key cannot add an entry after the keyed ones the old way…
    await w.env.sql(`UPDATE privacy.audit_log SET details = jsonb_set(details, '{to,retentionDays}', '3') WHERE seq = 7`);
    await relink({}, (seq) => seq <= 5 || seq === 7);
    expect(await verify()).toBe('audit trail BROKEN at entry 7: entry 7 is not keyed, after keyed ones: it was written without the key (6 entries before it check out)');
    // …nor write the entries before the keyed ones anew (their last hash is in key-audit's entry), nor drop key-audit's entry.
    await relink({}, (seq) => seq <= 4);
    expect(await verify()).toBe('audit trail BROKEN at entry 5: entry 5 is the first keyed one but not key-audit\'s: what comes before it was written anew (4 entries before it check out)');
    // …and the whole trail written anew the old way says it is not keyed, and the kept head is not in it.
    await relink({ 1: 1 }, () => true);
    expect(await verifyWith(['--head', kept])).toMatch(/NOT keyed[\s\S]*the head [0-9a-f]{64} is NOT in the checked chain$/);
    process.exitCode = 0;
  });

  it('keeps a keyed anchor when a purge takes the start of a keyed trail: nobody without the key moves it', async () => {
    // A new trail (the test before's goes).
    await w.env.sql(`DELETE FROM privacy.audit_log`);
    await w.env.sql(`DELETE FROM privacy.audit_anchor`);
    for (const retentionDays of [11, 13]) await update(retentionDays);
    const [first, second] = [await entry(1), await entry(2)];
    expect(w.privacy.app.get(AuditTrail).isKeyed(first)).toBe(true);
    // As the purge leaves it: the first entry gone, the anchor keyed.
    await w.env.sql(`DELETE FROM privacy.audit_log WHERE seq = 1`);
    await w.env.sql(`INSERT INTO privacy.audit_anchor (seq, hash, mac) VALUES (1, $1, $2)`, [first.hash, w.privacy.app.get(AuditTrail).anchorMac(1, first.hash)]);
    expect(await verify()).toBe(`audit trail intact: 1 entries, head ${second.hash}`);
    // Moved by someone without the key (to start a trail of their own after it): refused.
    await w.env.sql(`UPDATE privacy.audit_anchor SET hash = $1`, ['f'.repeat(64)]);
    expect(await verify()).toBe('audit trail BROKEN at entry 2: the anchor before entry 2 was changed (0 entries before it check out)');
    process.exitCode = 0;
  });
});
