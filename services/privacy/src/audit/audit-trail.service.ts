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

/** The entry `key-audit` writes: the first keyed one of a trail begun before the key. */
const KEYED_MARKER = 'audit.keyed';

interface Anchor {
  seq: string;
  hash: string;
  mac: string | null;
}

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

/**
 * The chain checked from its anchor. `unkeyed`: entries at its start written before the trail was keyed, the last
 * of them `lastUnkeyed`; `keyed`: whether the trail is (an entry, or the anchor).
 */
export type AuditVerification =
  | { ok: true; entries: number; head: string; keyed: boolean; unkeyed: number; lastUnkeyed?: { seq: number; hash: string } }
  | { ok: false; entries: number; brokenAt: number; reason: string };

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

/** How entries were hashed before the trail was keyed (plain sha256); the start of a trail of then stays so. */
export const unkeyedEntryHash = (prevHash: string, e: Hashed): string => createHash('sha256').update(bodyOf(prevHash, e)).digest('hex');

/**
 * The tamper-evident audit trail: every entry carries the hash of its
 * predecessor and its own, an HMAC under PRIVACY_AUDIT_KEY, so changing,
 * removing or reordering any entry breaks every link after it, and only the
 * key's holder could write them anew. A trail begun before the key keeps its
 * entries of then (plain sha256) and goes on the old way until `key-audit`,
 * once every replica runs with the key (replicas of the release before, in a
 * rollout, write the old way), writes its `audit.keyed` entry; from there every
 * entry is keyed, and the first keyed entry after unkeyed ones must be that one.
 * The anchor a purge leaves is keyed too (`mac`). Appends are serialised by an advisory lock
 * and commit with the change they record: a transaction appends after it
 * locked the rows it changes, never before, or two of them deadlock.
 */
@Injectable()
export class AuditTrail {
  private readonly secret: Buffer;

  constructor(
    private readonly ds: DataSource,
    @Inject(PRIVACY_CONFIG) config: PrivacyConfig,
    @Inject(LOGGER) logger: Logger,
  ) {
    this.secret = keyEncryptionKey(config.PRIVACY_AUDIT_KEY, { variable: 'PRIVACY_AUDIT_KEY', protects: 'the audit trail is keyed', nodeEnv: config.NODE_ENV, logger, seed: 'ally-development-audit-key' });
  }

  /** An entry's keyed hash after the given predecessor's (tests write entries of their own with it too). */
  hashOf(prevHash: string, e: Hashed): string {
    return entryHash(this.secret, prevHash, e);
  }

  /** How an entry's hash was made after `prevHash`: keyed, the old way (before the trail was keyed), or neither (changed). */
  hashedAs(prevHash: string, e: AuditEntry): 'keyed' | 'unkeyed' | undefined {
    if (this.hashOf(prevHash, e) === e.hash) return 'keyed';
    return unkeyedEntryHash(prevHash, e) === e.hash ? 'unkeyed' : undefined;
  }

  /** Whether an entry was written keyed, not as before the trail was keyed. */
  isKeyed(e: AuditEntry): boolean {
    return this.hashOf(e.prevHash, e) === e.hash;
  }

  /** What a purge of a keyed trail writes beside its anchor: a keyed anchor nobody without the key can write. */
  anchorMac(seq: number | string, hash: string): string {
    return createHmac('sha256', this.secret).update(`anchor\n${seq}\n${hash}`).digest('hex');
  }

  /**
   * Whether new entries are keyed: in a trail begun keyed (or from an anchor so), or once `key-audit` keyed it.
   * The last entry keyed says so at once (every append of a keyed trail); only a trail ending unkeyed is looked into.
   */
  private async keyedNow(em: EntityManager, last: AuditEntry | undefined, anchor: Anchor | undefined): Promise<boolean> {
    if ((last && this.isKeyed(last)) || (anchor && this.anchorKeyed(anchor))) return true;
    if (!last) return !anchor;
    const [row]: AuditRow[] = await em.query(`SELECT * FROM audit_log ORDER BY seq LIMIT 1`);
    if (this.isKeyed(toEntry(row))) return true;
    return (await em.query(`SELECT 1 FROM audit_log WHERE action = $1 LIMIT 1`, [KEYED_MARKER])).length > 0;
  }

  private anchorKeyed(anchor: Anchor): boolean {
    return anchor.mac !== null && anchor.mac === this.anchorMac(anchor.seq, anchor.hash);
  }

  async append(em: EntityManager, input: AuditEntryInput, keyed?: true): Promise<AuditEntry> {
    await lockNamed(em, 'ally-privacy-audit');
    const [row]: AuditRow[] = await em.query(`SELECT * FROM audit_log ORDER BY seq DESC LIMIT 1`);
    const last = row && toEntry(row);
    const [anchor]: Anchor[] = await em.query(`SELECT seq, hash, mac FROM audit_anchor`);
    const entry = {
      seq: last ? last.seq + 1 : anchor ? Number(anchor.seq) + 1 : 1,
      at: new Date().toISOString(),
      actor: input.actor,
      action: input.action,
      requestId: input.requestId ?? null,
      subjectHash: input.subjectHash ?? null,
      details: input.details ?? {},
    };
    // With every entry purged, the chain goes on from its anchor.
    const prevHash = last?.hash ?? anchor?.hash ?? GENESIS_HASH;
    // The old way until the trail is keyed: one chain with the replicas of the release before, in a rollout.
    const asKeyed = keyed ?? (await this.keyedNow(em, last, anchor));
    const hash = asKeyed ? entryHash(this.secret, prevHash, entry) : unkeyedEntryHash(prevHash, entry);
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
   * Keys a trail begun before the key (`key-audit`, once every replica runs with the key): checks it, and that the
   * head kept before the upgrade is in it, then writes its first keyed entry, from which every entry is keyed.
   * Nothing is rewritten: the entries of before keep their hashes.
   */
  async key(keptHead: string): Promise<AuditVerification & { keyedFrom?: number }> {
    return this.ds.transaction(async (em) => {
      await lockNamed(em, 'ally-privacy-audit');
      const checked = await this.walk(em, 1000);
      if (!checked.ok || checked.keyed) return checked;
      // Signed only what the operator vouches for: a trail written anew the old way would not hold their head.
      const kept = await this.seqIn(em, keptHead);
      if (kept === null) return { ok: false, entries: checked.entries, brokenAt: 0, reason: `the head ${keptHead} is not in the checked chain` };
      const marker = await this.append(em, { actor: 'system', action: KEYED_MARKER, details: { unkeyedEntries: checked.unkeyed } }, true);
      return { ...checked, entries: checked.entries + 1, head: marker.hash, keyed: true, keyedFrom: marker.seq };
    });
  }

  /**
   * The entry of the chain `verify` checks (from the anchor on, the anchor included) with this hash, for a head kept
   * outside the database: found, the entries from the anchor to it are as they were when it was kept. What lies
   * before the anchor was purged (or deleted): the chain does not tell which.
   */
  seqOf(hash: string): Promise<number | null> {
    return this.seqIn(this.ds, hash);
  }

  private async seqIn(em: Pick<EntityManager, 'query'>, hash: string): Promise<number | null> {
    const [row] = await em.query(
      `SELECT seq FROM audit_anchor WHERE hash = $1
       UNION ALL SELECT seq FROM audit_log WHERE hash = $1 AND seq > coalesce((SELECT seq FROM audit_anchor), 0) LIMIT 1`,
      [hash],
    );
    return row ? Number(row.seq) : null;
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

  private async walk(em: EntityManager, batch: number): Promise<AuditVerification> {
    const [anchor]: Anchor[] = await em.query(`SELECT seq, hash, mac FROM audit_anchor`);
    let prev: string = anchor?.hash ?? GENESIS_HASH;
    const first = anchor ? Number(anchor.seq) + 1 : 1;
    let expected = first;
    if (anchor?.mac != null && !this.anchorKeyed(anchor)) return { ok: false, entries: 0, brokenAt: first, reason: `the anchor before entry ${first} was changed` };
    let keyed = anchor ? this.anchorKeyed(anchor) : false;
    let unkeyed = 0;
    let lastUnkeyed: { seq: number; hash: string } | undefined;
    const broken = (at: number, reason: string) => ({ ok: false as const, entries: expected - first, brokenAt: at, reason });
    for (;;) {
      const rows: AuditRow[] = await em.query(`SELECT * FROM audit_log WHERE seq >= $1 ORDER BY seq LIMIT ${batch}`, [expected]);
      for (const row of rows) {
        const e = toEntry(row);
        if (e.seq !== expected) return broken(expected, `entry ${expected} is missing (next is ${e.seq})`);
        if (e.prevHash !== prev) return broken(e.seq, `entry ${e.seq} does not point to its predecessor's hash`);
        const hashed = this.hashedAs(prev, e);
        if (hashed === 'keyed') {
          // Keyed from here: from the trail's start, or after unkeyed ones at key-audit's entry (nothing else was signed so).
          if (!keyed && (anchor || e.seq !== 1) && e.action !== KEYED_MARKER) return broken(e.seq, `entry ${e.seq} is the first keyed one but not key-audit's: what comes before it was written anew`);
          keyed = true;
        } else if (!hashed) return broken(e.seq, `entry ${e.seq} was changed after it was written`);
        // Only the start of a trail begun before the key is unkeyed: one after a keyed entry was written without the key.
        else if (keyed) return broken(e.seq, `entry ${e.seq} is not keyed, after keyed ones: it was written without the key`);
        else {
          unkeyed++;
          lastUnkeyed = { seq: e.seq, hash: e.hash };
        }
        prev = e.hash;
        expected++;
      }
      // A trail with nothing in it yet is a new one: keyed from its first entry.
      if (rows.length < batch) return { ok: true, entries: expected - first, head: prev, keyed: keyed || (!anchor && expected === 1), unkeyed, ...(lastUnkeyed ? { lastUnkeyed } : {}) };
    }
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
  /** Checks what goes, and keys the anchor when the last entry that goes was keyed. */
  trail: Pick<AuditTrail, 'hashedAs' | 'anchorMac'>,
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
      const [gone]: [AuditRow[], number] = await em.query(
        `DELETE FROM audit_log WHERE seq IN (SELECT seq FROM audit_log WHERE ${goes()} ORDER BY seq LIMIT ${batch}) RETURNING *`,
        [days, heldUserIds],
      );
      if (!gone.length) return 0;
      // Only an intact run from the anchor goes: a purge must not seal over entries someone removed or changed.
      const [anchor]: Anchor[] = await em.query(`SELECT seq, hash, mac FROM audit_anchor`);
      const run = gone.map(toEntry).sort((a, b) => a.seq - b.seq);
      let [seq, prev] = [anchor ? Number(anchor.seq) : 0, anchor?.hash ?? GENESIS_HASH];
      let hashed: ReturnType<AuditTrail['hashedAs']>;
      for (const e of run) {
        hashed = e.seq === seq + 1 && e.prevHash === prev ? trail.hashedAs(prev, e) : undefined;
        if (!hashed) throw new Error(`the audit trail does not check out at entry ${seq + 1}: nothing of it is purged (verify-audit)`);
        [seq, prev] = [e.seq, e.hash];
      }
      await em.query(
        `INSERT INTO audit_anchor (seq, hash, mac) VALUES ($1, $2, $3) ON CONFLICT (one) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash, mac = EXCLUDED.mac, purged_at = now()`,
        [seq, prev, hashed === 'keyed' ? trail.anchorMac(seq, prev) : null],
      );
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
