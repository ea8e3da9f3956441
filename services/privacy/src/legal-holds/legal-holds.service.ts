import { Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { v7 as uuidv7 } from 'uuid';
import { decodeCursor, keysetPage, ProblemError, subjectExistsRpc, type Actor, type LegalHoldView, type Page } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import type { HeldScope } from '@ally/persistence';
import { AuditTrail } from '../audit/audit-trail.service.js';
import { ErasureUnderWay, NotFound } from '../common/privacy-errors.js';
import { erasureFinished, lockSubjectRequests } from '../common/subject-requests-lock.js';
import { lockHeldSet } from './held-set-lock.js';
import { SubjectHasher } from '../common/subject-hash.js';

interface HoldRow {
  id: string;
  user_id: string | null;
  reason: string;
  created_by: string;
  created_at: Date;
  released_at: Date | null;
  released_by: string | null;
}

const view = (r: HoldRow): LegalHoldView => ({
  id: r.id,
  userId: r.user_id ?? '(erased)',
  reason: r.reason,
  createdAt: new Date(r.created_at).toISOString(),
  createdBy: r.created_by,
  releasedAt: r.released_at ? new Date(r.released_at).toISOString() : null,
  releasedBy: r.released_by,
});

/** Nobody holds, or frees, their own data: another member of the compliance team does (as with deciding a request). */
const ownHold = () => new ProblemError(403, 'This is your own account: another member of the compliance team places or releases a legal hold on it');

/**
 * Legal holds (Art. 17(3)(e) GDPR): while one stands, retention runs skip the
 * user's rows and an erasure of the user waits; releasing it lets both go on.
 */
@Injectable()
export class LegalHoldsService {
  constructor(
    private readonly ds: DataSource,
    private readonly audit: AuditTrail,
    private readonly hasher: SubjectHasher,
    private readonly rpc: RpcClient,
  ) {}

  async create(actor: Actor, input: { userId: string; reason: string }): Promise<LegalHoldView> {
    if (input.userId === actor.userId) throw ownHold();
    // A mistyped id would hold nothing while compliance believes it holds someone.
    const { exists } = await this.rpc.call(subjectExistsRpc, { userId: input.userId });
    if (!exists) throw new ProblemError(404, `No account has the id ${input.userId}: nothing to hold`, { errors: [{ field: 'userId', message: 'is no account' }] });
    const id = uuidv7();
    const subjectHash = this.hasher.hash(input.userId);
    return this.ds.transaction(async (em) => {
      // Erasure steps are claimed under this lock, shared: from here none starts for a held subject. One running
      // already cannot be stopped, nor one begun and waiting to go on (a service that erases in slices may have
      // deleted part, and shredded the key), nor one with a service done already (its data is gone, the subject told
      // so): the hold is refused rather than said to keep what is being deleted.
      // The subject's requests first (an erasure finishing holds it, and a restriction takes it before the held set):
      // an erasure that completed while this waited is seen by its tombstone. Identity said the account existed
      // before either lock; holding what is gone would keep the erased id for ever.
      await lockSubjectRequests(em, input.userId);
      await lockHeldSet(em, 'exclusive');
      if (await erasureFinished(em, subjectHash)) {
        throw new ProblemError(409, 'This account was erased: there is nothing left to hold');
      }
      const [erasing] = await em.query(
        `SELECT s.request_id, s.service FROM request_steps s JOIN requests r ON r.id = s.request_id
          WHERE r.user_id = $1 AND r.type = 'erasure' AND r.status NOT IN ('completed', 'failed') AND s.action = 'erase'
            AND ((s.status = 'running' AND s.lease_until > now()) OR s.attempts > 0 OR s.status = 'completed')
          ORDER BY s.status = 'completed' LIMIT 1`,
        [input.userId],
      );
      if (erasing) throw new ErasureUnderWay(erasing.request_id, erasing.service);
      const [row] = await em.query(`INSERT INTO legal_holds (id, user_id, subject_hash, reason, created_by) VALUES ($1, $2, $3, $4, $5) RETURNING *`, [id, input.userId, subjectHash, input.reason, actor.userId]);
      await this.audit.append(em, { actor: `staff:${actor.userId}`, action: 'legal-hold.placed', subjectHash, details: { holdId: id } });
      return view(row);
    });
  }

  async isHeld(userId: string): Promise<boolean> {
    const rows = await this.ds.query(`SELECT 1 FROM legal_holds WHERE user_id = $1 AND released_at IS NULL LIMIT 1`, [userId]);
    return rows.length > 0;
  }

  async release(actor: Actor, id: string): Promise<LegalHoldView> {
    return this.ds.transaction(async (em) => {
      const [rows] = await em.query(`UPDATE legal_holds SET released_at = now(), released_by = $2 WHERE id = $1 AND released_at IS NULL AND user_id IS DISTINCT FROM $2 RETURNING *`, [id, actor.userId]);
      const row: HoldRow | undefined = rows[0] ?? (await em.query(`SELECT * FROM legal_holds WHERE id = $1`, [id]))[0];
      if (!row) throw new NotFound('legal hold');
      if (!rows[0] && !row.released_at && row.user_id === actor.userId) throw ownHold();
      if (rows[0]) await this.audit.append(em, { actor: `staff:${actor.userId}`, action: 'legal-hold.released', subjectHash: row.user_id ? this.hasher.hash(row.user_id) : null, details: { holdId: id } });
      return view(row);
    });
  }

  /** Newest first, a keyset page over (created_at, id). */
  async list(active: boolean | undefined, limit: number, cursor?: string): Promise<Page<LegalHoldView>> {
    const where = [active === undefined ? 'TRUE' : active ? 'released_at IS NULL' : 'released_at IS NOT NULL'];
    const after = decodeCursor(cursor);
    // The cursor holds milliseconds (as JSON times do): the key is cut to them, so holds of one millisecond are not skipped.
    if (after) where.push(`(date_trunc('milliseconds', created_at), id) < ($1::timestamptz, $2::uuid)`);
    const rows: HoldRow[] = await this.ds.query(
      `SELECT * FROM legal_holds WHERE ${where.join(' AND ')} ORDER BY date_trunc('milliseconds', created_at) DESC, id DESC LIMIT ${limit + 1}`,
      after ? [after.at, after.id] : [],
    );
    const { page, nextCursor } = keysetPage(rows, limit, (r) => [new Date(r.created_at), r.id]);
    return { data: page.map(view), nextCursor };
  }

  /**
   * Who a retention run must spare: users under a legal hold or with a restriction of processing (Art. 18) asked
   * for and not lifted (a lift announced to the subject has not taken effect yet). A hold or a restriction of
   * scope `all` keeps all their rows; a restriction of one workspace only that workspace's (`scopes`).
   */
  async held(em: Pick<EntityManager, 'query'> = this.ds.manager): Promise<{ userIds: string[]; scopes: HeldScope[] }> {
    const rows: { user_id: string; scopes: string[] }[] = await em.query(
      `SELECT user_id, array_agg(DISTINCT scope) AS scopes FROM (
         SELECT user_id, 'all' AS scope FROM legal_holds WHERE released_at IS NULL AND user_id IS NOT NULL
         UNION SELECT user_id, scope FROM requests WHERE type = 'restriction' AND status IN ('received', 'in_progress', 'completed') AND took_effect_at IS NULL AND user_id IS NOT NULL
       ) h GROUP BY user_id`,
    );
    return {
      userIds: rows.map((r) => r.user_id),
      scopes: rows.filter((r) => !r.scopes.includes('all')).flatMap((r) => r.scopes.map((scope) => ({ userId: r.user_id, scope }))),
    };
  }
}
