import { Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { v7 as uuidv7 } from 'uuid';
import { decodeCursor, keysetPage, limitReached, MAX_CONSENT_DECISIONS_PER_DAY, MAX_CONSENT_PURPOSES, ProblemError, type ConsentRecord, type ConsentView, type RequestMeta } from '@ally/contracts';
import { NotFound } from '../common/privacy-errors.js';
import { lockSubject } from '@ally/persistence';

/** A consent is valid this long; then it expires and must be asked again (privacy policy: up to two years). */
export const CONSENT_VALIDITY = `interval '2 years'`;

interface ConsentRow {
  purpose: string;
  granted: boolean;
  policy_version: string;
  user_agent: string | null;
  source: 'given' | 'withdrawal';
  recorded_at: Date;
  expires_at: Date;
}

/**
 * Consent records for a pseudonymous subject id (no login needed): each
 * decision is a new row, so the history stays; the current state per
 * purpose is the newest row. Withdrawal records a refusal for every purpose
 * still granted.
 */
@Injectable()
export class ConsentsService {
  constructor(private readonly ds: DataSource) {}

  async record(input: { subjectId: string; purposes: Record<string, boolean>; policyVersion: string }, meta?: RequestMeta): Promise<ConsentView> {
    await this.ds.transaction(async (em) => {
      await this.takeTurn(em, input.subjectId);
      const [{ purposes }] = await em.query(
        `SELECT count(*)::int AS purposes FROM (SELECT purpose FROM consents WHERE subject_id = $1 UNION SELECT unnest($2::text[])) p`,
        [input.subjectId, Object.keys(input.purposes)],
      );
      if (purposes > MAX_CONSENT_PURPOSES) {
        throw new ProblemError(422, `A subject's consents may name at most ${MAX_CONSENT_PURPOSES} purposes; this one would have ${purposes}`, {
          errors: [{ field: 'purposes', message: `would make more than ${MAX_CONSENT_PURPOSES} purposes for this subject` }],
        });
      }
      const [{ lately }] = await em.query(`SELECT count(*)::int AS lately FROM consents WHERE subject_id = $1 AND recorded_at > now() - interval '1 day'`, [input.subjectId]);
      if (lately + Object.keys(input.purposes).length > MAX_CONSENT_DECISIONS_PER_DAY && !(await this.onlyWithdraws(em, input.subjectId, input.purposes))) {
        throw limitReached(`This subject recorded ${lately} consent decisions in the last 24 hours; at most ${MAX_CONSENT_DECISIONS_PER_DAY} are taken a day (a withdrawal always is)`);
      }
      // A refusal of a consent in force withdraws it (Art. 7(3) GDPR), and is recorded as the withdrawal it is.
      const inForce = new Set(await this.grantedNow(em, input.subjectId));
      for (const [purpose, granted] of Object.entries(input.purposes)) {
        const source = !granted && inForce.has(purpose) ? 'withdrawal' : 'given';
        await this.insert(em, { subjectId: input.subjectId, purpose, granted, policyVersion: input.policyVersion, source }, meta);
      }
    });
    return this.get(input.subjectId);
  }

  async withdraw(subjectId: string, meta?: RequestMeta): Promise<ConsentView> {
    await this.ds.transaction(async (em) => {
      // Withdrawals of one subject at the same moment take turns: each sees what the one before withdrew (they wrote each withdrawal again).
      await this.takeTurn(em, subjectId);
      const granted = (await this.get(subjectId, {}, em)).current.filter((c) => c.granted && !c.expired);
      for (const c of granted) await this.insert(em, { subjectId, purpose: c.purpose, granted: false, policyVersion: c.policyVersion, source: 'withdrawal' }, meta);
    });
    return this.get(subjectId);
  }

  /**
   * Whether the decisions withdraw a consent given and in force, granting none ("reject all" counts, also naming
   * purposes already refused): taken whatever the day's count (Art. 7(3) GDPR). Each needs a grant to withdraw,
   * and grants are counted, so these stay bounded too.
   */
  private async onlyWithdraws(em: EntityManager, subjectId: string, purposes: Record<string, boolean>): Promise<boolean> {
    if (Object.values(purposes).some(Boolean)) return false;
    const granted = new Set(await this.grantedNow(em, subjectId));
    return Object.keys(purposes).some((p) => granted.has(p));
  }

  /** The purposes whose newest decision grants them and has not expired. */
  private async grantedNow(em: EntityManager, subjectId: string): Promise<string[]> {
    const rows: { purpose: string }[] = await em.query(
      `SELECT purpose FROM (SELECT DISTINCT ON (purpose) purpose, granted, expires_at FROM consents WHERE subject_id = $1 ORDER BY purpose, recorded_at DESC, id DESC) l
        WHERE granted AND expires_at > now()`,
      [subjectId],
    );
    return rows.map((r) => r.purpose);
  }

  /**
   * Decisions of one subject are recorded one after the other, each stamped
   * with the time it took its turn (clock_timestamp, not the transaction's
   * start): a withdrawal that waited for a grant and withdrew it sorts after
   * it (stamped with its start, it sorted before and the grant stood).
   */
  private async takeTurn(em: EntityManager, subjectId: string): Promise<void> {
    // A 64-bit key (the subjects' lock space), not `lockNamed`'s 32 bits: an id anyone may choose, found offline to
    // collide with a name privacy locks by (its retention run's, its held set's), would hold those.
    await lockSubject(em, `consent-subject:${subjectId}`, 'exclusive');
  }

  private async insert(
    em: EntityManager,
    c: { subjectId: string; purpose: string; granted: boolean; policyVersion: string; source: 'given' | 'withdrawal' },
    meta?: RequestMeta,
  ): Promise<void> {
    await em.query(
      `INSERT INTO consents (id, subject_id, purpose, granted, policy_version, user_agent, source, recorded_at, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, clock_timestamp(), clock_timestamp() + ${CONSENT_VALIDITY})`,
      [uuidv7(), c.subjectId, c.purpose, c.granted, c.policyVersion, meta?.userAgent?.slice(0, 300) ?? null, c.source],
    );
  }

  /**
   * The newest decision per purpose (at most MAX_CONSENT_PURPOSES), and one
   * page of the history, newest first: a history of any length is read in
   * pages, never in one answer.
   */
  async get(subjectId: string, page: { limit?: number; cursor?: string } = {}, em: EntityManager = this.ds.manager): Promise<ConsentView> {
    const latest: ConsentRow[] = await em.query(
      `SELECT DISTINCT ON (purpose) * FROM consents WHERE subject_id = $1 ORDER BY purpose, recorded_at DESC, id DESC`,
      [subjectId],
    );
    if (latest.length === 0) throw new NotFound('consent record');
    const limit = page.limit ?? HISTORY_PAGE;
    const after = decodeCursor(page.cursor);
    // Ordered by the millisecond a cursor can hold, so a page ends where the next begins.
    const rows: (ConsentRow & { id: string; at: Date })[] = await em.query(
      `SELECT *, date_trunc('milliseconds', recorded_at) AS at FROM consents
        WHERE subject_id = $1 ${after ? `AND (date_trunc('milliseconds', recorded_at), id) < ($2::timestamptz, $3::uuid)` : ''}
        ORDER BY date_trunc('milliseconds', recorded_at) DESC, id DESC LIMIT ${limit + 1}`,
      after ? [subjectId, after.at, after.id] : [subjectId],
    );
    const { page: history, nextCursor } = keysetPage(rows, limit, (r) => [new Date(r.at), r.id]);
    const now = Date.now();
    const current = latest.map((r) => {
      const h = record(r);
      const expired = Date.parse(h.expiresAt) <= now;
      // An expired consent counts as not given.
      return { purpose: h.purpose, granted: h.granted && !expired, policyVersion: h.policyVersion, recordedAt: h.recordedAt, expiresAt: h.expiresAt, expired };
    });
    return { subjectId, current, history: history.map(record), nextCursor };
  }
}

/** History entries per answer unless a page names its own `limit`. */
const HISTORY_PAGE = 20;

const record = (r: ConsentRow): ConsentRecord => ({
  purpose: r.purpose,
  granted: r.granted,
  policyVersion: r.policy_version,
  userAgent: r.user_agent,
  source: r.source,
  recordedAt: new Date(r.recorded_at).toISOString(),
  expiresAt: new Date(r.expires_at).toISOString(),
});
