import { Inject, Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { createHash, createHmac } from 'node:crypto';
import type { Logger } from 'pino';
import { keyEncryptionKey, LOGGER } from '@ally/platform';
import { canonicalJson } from './canonical-json.js';
import { lockNamed } from '@ally/persistence';
import { PRIVACY_CONFIG, type PrivacyConfig } from '../config.js';
import { releasedHoldsPast, requestsPast } from '../retention/own-rules.js';

export const GENESIS_HASH = '0'.repeat(64);

export interface AuditEntryInput {
  /** `subject:<hash>`, `staff:<user id>` or `system`: who, without more personal data than needed. */
  actor: string;
  action: string;
  requestId?: string | null;
  subjectHash?: string | null;
  /** Counts, ids, states: never names, addresses or content. */
  details?: Record<string, unknown>;
}

export interface AuditEntry extends Required<Omit<AuditEntryInput, 'details'>> {
  seq: number;
  at: string;
  details: Record<string, unknown>;
  prevHash: string;
  hash: string;
}

export type AuditVerification = { ok: true; entries: number; head: string } | { ok: false; entries: number; brokenAt: number; reason: string };

/** What `rekey-audit` did: the entries it rewrote keyed, or why it left the trail as it was. */
export type AuditRekeying = { ok: true; rewritten: number; entries: number; head: string } | { ok: false; brokenAt: number; reason: string };

class RekeyRefused extends Error {
  constructor(readonly at: Extract<AuditVerification, { ok: false }>) {
    super(at.reason);
  }
}

interface AuditRow {
  seq: string;
  at: Date;
  actor: string;
  action: string;
  request_id: string | null;
  subject_hash: string | null;
  details: Record<string, unknown>;
  prev_hash: string;
  hash: string;
}

type Hashed = Omit<AuditEntry, 'prevHash' | 'hash'>;

const bodyOf = (prevHash: string, e: Hashed) =>
  `${prevHash}\n${canonicalJson({ seq: e.seq, at: e.at, actor: e.actor, action: e.action, requestId: e.requestId, subjectHash: e.subjectHash, details: e.details })}`;

/** HMAC-SHA256 under PRIVACY_AUDIT_KEY over the predecessor's hash and the entry's canonical JSON. */
export const entryHash = (key: Buffer, prevHash: string, e: Hashed): string => createHmac('sha256', key).update(bodyOf(prevHash, e)).digest('hex');

/** How entries were hashed before the trail was keyed (plain sha256): `rekey-audit` takes such a trail over. */
export const unkeyedEntryHash = (prevHash: string, e: Hashed): string => createHash('sha256').update(bodyOf(prevHash, e)).digest('hex');

/**
 * The tamper-evident audit trail: every entry carries the hash of its
 * predecessor and its own, keyed with PRIVACY_AUDIT_KEY, so changing,
 * removing or reordering any entry breaks every link after it, and only the
 * key's holder could write them anew. Appends are serialised by an advisory
 * lock and commit with the change they record: a transaction appends after it
 * locked the rows it changes, never before, or two of them deadlock.
 */
@Injectable()
export class AuditTrail {
  private readonly key: Buffer;

  constructor(
    private readonly ds: DataSource,
    @Inject(PRIVACY_CONFIG) config: PrivacyConfig,
    @Inject(LOGGER) logger: Logger,
  ) {
    this.key = keyEncryptionKey(config.PRIVACY_AUDIT_KEY, { variable: 'PRIVACY_AUDIT_KEY', protects: 'the audit trail is keyed', nodeEnv: config.NODE_ENV, logger, seed: 'ally-development-audit-key' });
  }

  /** An entry's hash after the given predecessor's (for tests that write entries of their own). */
  hashOf(prevHash: string, e: Hashed): string {
    return entryHash(this.key, prevHash, e);
  }

  async append(em: EntityManager, input: AuditEntryInput): Promise<AuditEntry> {
    await lockNamed(em, 'ally-privacy-audit');
    // With every entry purged, the chain goes on from its anchor.
    const [last] = await em.query(`(SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1) UNION ALL (SELECT seq, hash FROM audit_anchor) ORDER BY seq DESC LIMIT 1`);
    const entry = {
      seq: last ? Number(last.seq) + 1 : 1,
      at: new Date().toISOString(),
      actor: input.actor,
      action: input.action,
      requestId: input.requestId ?? null,
      subjectHash: input.subjectHash ?? null,
      details: input.details ?? {},
    };
    const prevHash = last?.hash ?? GENESIS_HASH;
    const hash = entryHash(this.key, prevHash, entry);
    await em.query(
      `INSERT INTO audit_log (seq, at, actor, action, request_id, subject_hash, details, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
      [entry.seq, entry.at, entry.actor, entry.action, entry.requestId, entry.subjectHash, JSON.stringify(entry.details), prevHash, hash],
    );
    return { ...entry, prevHash, hash };
  }

  /** Appends in a transaction of its own. */
  record(input: AuditEntryInput): Promise<AuditEntry> {
    return this.ds.transaction((em) => this.append(em, input));
  }

  /**
   * Takes a trail written before it was keyed into the keyed chain, once, at the upgrade (`rekey-audit`): every
   * entry is checked first, as it was hashed then (plain sha256; those after it keyed already), and only an intact
   * trail is written anew, in one transaction that appends wait for. An unkeyed entry after a keyed one was not
   * written by this service: nothing is rewritten then.
   */
  async rekey(batch = 1000): Promise<AuditRekeying> {
    try {
      return await this.ds.transaction(async (em) => {
        await lockNamed(em, 'ally-privacy-audit');
        let keyedSeen = false;
        let newPrev: string | undefined;
        let changed: { seq: number; prev: string; hash: string }[] = [];
        let rewritten = 0;
        const flush = async () => {
          if (!changed.length) return;
          await em.query(
            `UPDATE audit_log a SET prev_hash = v.prev, hash = v.hash FROM (SELECT unnest($1::bigint[]) AS seq, unnest($2::text[]) AS prev, unnest($3::text[]) AS hash) v WHERE a.seq = v.seq`,
            [changed.map((c) => c.seq), changed.map((c) => c.prev), changed.map((c) => c.hash)],
          );
          rewritten += changed.length;
          changed = [];
        };
        const walked = await this.walk(em, batch, {
          checks: (prev, e) => {
            const keyed = this.hashOf(prev, e) === e.hash;
            if (!keyed && unkeyedEntryHash(prev, e) !== e.hash) return `entry ${e.seq} was changed after it was written`;
            if (!keyed && keyedSeen) return `entry ${e.seq} is unkeyed after keyed ones: the trail was rewritten`;
            keyedSeen ||= keyed;
            const from = newPrev ?? prev;
            const hash = this.hashOf(from, e);
            if (hash !== e.hash || from !== e.prevHash) changed.push({ seq: e.seq, prev: from, hash });
            newPrev = hash;
            return undefined;
          },
          afterBatch: flush,
        });
        // Refused: what earlier batches rewrote goes back with the transaction.
        if (!walked.ok) throw new RekeyRefused(walked);
        return { ok: true as const, rewritten, entries: walked.entries, head: newPrev ?? walked.head };
      });
    } catch (err) {
      if (err instanceof RekeyRefused) return { ok: false, brokenAt: err.at.brokenAt, reason: err.at.reason };
      throw err;
    }
  }

  async forRequest(requestId: string): Promise<AuditEntry[]> {
    const rows: AuditRow[] = await this.ds.query(`SELECT * FROM audit_log WHERE request_id = $1 ORDER BY seq`, [requestId]);
    return rows.map(toEntry);
  }

  /** Walks the chain from its anchor (or its start); reports the first entry whose link or content does not check out. */
  async verify(batch = 1000): Promise<AuditVerification> {
    // One snapshot for the anchor and every batch: a purge that moves the anchor meanwhile is not a missing entry.
    return this.ds.transaction('REPEATABLE READ', (em) => this.walk(em, batch));
  }

  /**
   * The chain from its anchor, in batches: each entry's seq and link to its predecessor, then `checks` (by
   * default: its keyed hash), which names what is wrong or nothing; `afterBatch` runs after each batch.
   */
  private async walk(
    em: EntityManager,
    batch: number,
    opts: { checks?: (prev: string, e: AuditEntry) => string | undefined; afterBatch?: () => Promise<void> } = {},
  ): Promise<AuditVerification> {
    const checks = opts.checks ?? ((prev, e) => this.changed(prev, e));
    const [anchor] = await em.query(`SELECT seq, hash FROM audit_anchor`);
    let prev: string = anchor?.hash ?? GENESIS_HASH;
    const first = anchor ? Number(anchor.seq) + 1 : 1;
    let expected = first;
    for (;;) {
      const rows: AuditRow[] = await em.query(`SELECT * FROM audit_log WHERE seq >= $1 ORDER BY seq LIMIT ${batch}`, [expected]);
      for (const row of rows) {
        const e = toEntry(row);
        if (e.seq !== expected) return { ok: false, entries: expected - first, brokenAt: expected, reason: `entry ${expected} is missing (next is ${e.seq})` };
        if (e.prevHash !== prev) return { ok: false, entries: expected - first, brokenAt: e.seq, reason: `entry ${e.seq} does not point to its predecessor's hash` };
        const wrong = checks(prev, e);
        if (wrong) return { ok: false, entries: expected - first, brokenAt: e.seq, reason: wrong };
        prev = e.hash;
        expected++;
      }
      await opts.afterBatch?.();
      if (rows.length < batch) return { ok: true, entries: expected - first, head: prev };
    }
  }

  /** What is wrong with an entry's hash, if anything. */
  private changed(prev: string, e: AuditEntry): string | undefined {
    if (this.hashOf(prev, e) === e.hash) return undefined;
    return unkeyedEntryHash(prev, e) === e.hash ? `entry ${e.seq} was written before the trail was keyed (run rekey-audit once)` : `entry ${e.seq} was changed after it was written`;
  }
}

/**
 * Entries past `days` go oldest first, and only as a run from the start: the
 * first one still needed (too young, of a request or legal hold still kept, or
 * of a held subject) and all after it stay. The last deleted entry's seq and
 * hash become the anchor the rest is verified from, in the same transaction.
 */
export async function purgeAuditTrail(
  ds: DataSource,
  days: number,
  heldUserIds: string[],
  dryRun: boolean,
  batch = 1000,
  /** A dry run's: the periods of requests and legal holds the same run deletes first (their entries then go too). */
  goingFirst: { requestsDays: number | null; holdsDays: number | null } = { requestsDays: null, holdsDays: null },
  /** No batch is started after this (ms); `complete` says whether all that was due went. */
  stopBy = Infinity,
): Promise<{ affected: number; complete: boolean }> {
  const kept = (table: string, past: string | null) => `SELECT id FROM ${table}${past ? ` WHERE NOT (${past})` : ''}`;
  const goes = (requestsGone: string | null = null, holdsGone: string | null = null) => `seq < coalesce(
      (SELECT min(k.seq) FROM audit_log k WHERE k.at >= now() - make_interval(days => $1)
         OR k.request_id IN (${kept('requests', requestsGone)})
         OR k.details->>'holdId' IN (SELECT id::text FROM (${kept('legal_holds', holdsGone)}) h)
         OR k.subject_hash IN (SELECT subject_hash FROM legal_holds WHERE released_at IS NULL UNION SELECT subject_hash FROM requests WHERE user_id = ANY($2::uuid[]))),
      (SELECT max(seq) + 1 FROM audit_log))`;
  if (dryRun) {
    const params: unknown[] = [days, heldUserIds];
    const { requestsDays, holdsDays } = goingFirst;
    const requestsGone = requestsDays === null ? null : requestsPast(`$${params.push(requestsDays)}`, '$2');
    const holdsGone = holdsDays === null ? null : releasedHoldsPast(`$${params.push(holdsDays)}`);
    const [{ n }] = await ds.query(`SELECT count(*)::int AS n FROM audit_log WHERE ${goes(requestsGone, holdsGone)}`, params);
    return { affected: n, complete: true };
  }
  let total = 0;
  for (;;) {
    if (Date.now() >= stopBy) return { affected: total, complete: false };
    const n = await ds.transaction(async (em) => {
      // Appends wait: the anchor must be the entry just before the first one left.
      await lockNamed(em, 'ally-privacy-audit');
      const [gone]: [{ seq: string; hash: string }[], number] = await em.query(
        `DELETE FROM audit_log WHERE seq IN (SELECT seq FROM audit_log WHERE ${goes()} ORDER BY seq LIMIT ${batch}) RETURNING seq, hash`,
        [days, heldUserIds],
      );
      if (!gone.length) return 0;
      const last = gone.reduce((a, b) => (Number(b.seq) > Number(a.seq) ? b : a));
      await em.query(`INSERT INTO audit_anchor (seq, hash) VALUES ($1, $2) ON CONFLICT (one) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash, purged_at = now()`, [last.seq, last.hash]);
      return gone.length;
    });
    total += n;
    if (n < batch) return { affected: total, complete: true };
  }
}

function toEntry(r: AuditRow): AuditEntry {
  return {
    seq: Number(r.seq),
    at: new Date(r.at).toISOString(),
    actor: r.actor,
    action: r.action,
    requestId: r.request_id,
    subjectHash: r.subject_hash,
    details: r.details ?? {},
    prevHash: r.prev_hash,
    hash: r.hash,
  };
}
