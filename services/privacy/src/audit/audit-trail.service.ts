import { Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { createHash } from 'node:crypto';
import { canonicalJson } from './canonical-json.js';
import { lockNamed } from '@ally/persistence';
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

/** sha256 over the predecessor's hash and the entry's canonical JSON. */
export function entryHash(prevHash: string, e: Omit<AuditEntry, 'prevHash' | 'hash'>): string {
  const body = canonicalJson({ seq: e.seq, at: e.at, actor: e.actor, action: e.action, requestId: e.requestId, subjectHash: e.subjectHash, details: e.details });
  return createHash('sha256').update(`${prevHash}\n${body}`).digest('hex');
}

/**
 * The tamper-evident audit trail: every entry carries the hash of its
 * predecessor and its own, so changing, removing or reordering any entry
 * breaks every link after it. Appends are serialised by an advisory lock and
 * commit with the change they record: a transaction appends after it locked
 * the rows it changes, never before, or two of them deadlock.
 */
@Injectable()
export class AuditTrail {
  constructor(private readonly ds: DataSource) {}

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
    const hash = entryHash(prevHash, entry);
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
        if (entryHash(prev, e) !== e.hash) return { ok: false, entries: expected - first, brokenAt: e.seq, reason: `entry ${e.seq} was changed after it was written` };
        prev = e.hash;
        expected++;
      }
      if (rows.length < batch) return { ok: true, entries: expected - first, head: prev };
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
