import { Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { decodeCursor, keysetPage, PROCESSORS, type PrivacyDecision, type PrivacyDecisionView, type Page, type PrivacyRequestStatus, type PrivacyRequestType, type PrivacyRequestView, type PrivacyStepAction, type PrivacyStepStatus, type ProcessorNotice } from '@ally/contracts';
import type { PlannedStep } from './request-plan.js';

export interface RequestRow {
  id: string;
  user_id: string | null;
  subject_hash: string;
  type: PrivacyRequestType;
  scope: string;
  status: PrivacyRequestStatus;
  due_at: Date;
  escalated_at: Date | null;
  failure: string | null;
  wrapped_key: Buffer | null;
  download_until: Date | null;
  details: Record<string, unknown>;
  created_at: Date;
  completed_at: Date | null;
  decision: PrivacyDecision | null;
  decision_reason: string | null;
  decided_at: Date | null;
  takes_effect_at: Date | null;
  took_effect_at: Date | null;
}

interface StepRow {
  request_id: string;
  service: string;
  action: PrivacyStepAction;
  phase: number;
  status: PrivacyStepStatus;
  attempts: number;
  last_error: string | null;
  result: Record<string, number> | null;
  completed_at: Date | null;
}

interface NoticeRow {
  request_id: string;
  processor: ProcessorNotice['processor'];
  service: string;
  action: ProcessorNotice['action'];
  status: ProcessorNotice['status'];
  at: Date;
}

const iso = (d: Date | null): string | null => (d ? new Date(d).toISOString() : null);

const decisionView = (r: RequestRow): PrivacyDecisionView | null =>
  r.decision
    ? { outcome: r.decision, reason: r.decision_reason ?? '', decidedAt: iso(r.decided_at)!, takesEffectAt: iso(r.takes_effect_at)!, tookEffectAt: iso(r.took_effect_at) }
    : null;

/** Data-subject requests, their steps and processor notices. */
/**
 * One month from receipt (Art. 12(3) GDPR), or 30 days where that is earlier (Art. 18(1) DSV, for subjects in
 * Switzerland, whom a request does not tell apart), counted on the German calendar: received 31 January at 00:30
 * in Berlin, due 28 February (in UTC it was still 30 January, and the month ran to 1 March); received 1 July, due 31 July.
 */
export const DUE_DATE = `LEAST((now() AT TIME ZONE 'Europe/Berlin') + interval '1 month', (now() AT TIME ZONE 'Europe/Berlin') + interval '30 days') AT TIME ZONE 'Europe/Berlin'`;

@Injectable()
export class RequestsRepository {
  constructor(private readonly ds: DataSource) {}

  async insert(
    em: EntityManager,
    r: { id: string; userId: string; subjectHash: string; type: PrivacyRequestType; scope: string; wrappedKey: Buffer | null; details?: Record<string, unknown>; status?: PrivacyRequestStatus },
    steps: PlannedStep[],
  ): Promise<void> {
    await em.query(
      `INSERT INTO requests (id, user_id, subject_hash, type, scope, status, due_at, wrapped_key, details, completed_at)
       VALUES ($1, $2, $3, $4, $5, $6, ${DUE_DATE}, $7, $8, CASE WHEN $6 = 'completed' THEN now() END)`,
      [r.id, r.userId, r.subjectHash, r.type, r.scope, r.status ?? 'received', r.wrappedKey, JSON.stringify(r.details ?? {})],
    );
    for (const s of steps) {
      await em.query(`INSERT INTO request_steps (request_id, service, action, phase) VALUES ($1, $2, $3, $4)`, [r.id, s.service, s.action, s.phase]);
    }
  }

  /**
   * A request of this type and scope still open: one being carried out, or a restriction not lifted or an
   * objection not decided (they complete within seconds and stand until compliance decides: a second one of the
   * same scope would only queue another decision).
   */
  async openOfSameKind(em: EntityManager, userId: string, type: string, scope: string): Promise<string | null> {
    const [row] = await em.query(
      `SELECT id FROM requests WHERE user_id = $1 AND type = $2 AND scope = $3
          AND (status IN ('received', 'in_progress') OR (type IN ('restriction', 'objection') AND decision IS NULL AND status <> 'failed')) LIMIT 1`,
      [userId, type, scope],
    );
    return row?.id ?? null;
  }

  /**
   * An export of this kind and scope completed since `since` whose package can still be downloaded (not voided by
   * an erasure): the id and when it completed.
   */
  async recentExport(em: EntityManager, userId: string, type: string, scope: string, since: Date): Promise<{ id: string; completedAt: Date } | null> {
    const [row] = await em.query(
      `SELECT id, completed_at FROM requests WHERE user_id = $1 AND type = $2 AND scope = $3 AND status = 'completed' AND completed_at > $4 AND wrapped_key IS NOT NULL
        ORDER BY completed_at DESC LIMIT 1`,
      [userId, type, scope, since],
    );
    return row ? { id: row.id, completedAt: new Date(row.completed_at) } : null;
  }

  /**
   * An erasure of the whole account not yet done: the subject files nothing else meanwhile. One a legal hold
   * suspends does not count: it may wait for years, and the subject's other rights do not.
   */
  async openErasureOfAccount(em: EntityManager, userId: string): Promise<string | null> {
    const [row] = await em.query(
      `SELECT id FROM requests WHERE user_id = $1 AND type = 'erasure' AND scope = 'all' AND status IN ('received', 'in_progress')
         AND NOT EXISTS (SELECT 1 FROM legal_holds WHERE user_id = $1 AND released_at IS NULL) LIMIT 1`,
      [userId],
    );
    return row?.id ?? null;
  }

  async find(id: string, em: EntityManager | DataSource = this.ds, opts: { forUpdate?: boolean } = {}): Promise<RequestRow | null> {
    const [row] = await em.query(`SELECT * FROM requests WHERE id = $1${opts.forUpdate ? ' FOR UPDATE' : ''}`, [id]);
    return row ?? null;
  }

  async view(id: string): Promise<PrivacyRequestView | null> {
    const row = await this.find(id);
    return row ? (await this.views([row]))[0] : null;
  }

  async listForUser(userId: string, limit: number, cursor?: string): Promise<Page<PrivacyRequestView>> {
    return this.page(`user_id = $1`, [userId], limit, cursor);
  }

  /** `awaiting: 'decision'`: restrictions not lifted and objections not decided, of subjects not erased. */
  async listAll(filter: { status?: PrivacyRequestStatus; awaiting?: 'decision' }, limit: number, cursor?: string): Promise<Page<PrivacyRequestView>> {
    const where = ['TRUE'];
    const params: unknown[] = [];
    if (filter.status) where.push(`status = $${params.push(filter.status)}`);
    if (filter.awaiting === 'decision') where.push(`type IN ('restriction', 'objection') AND decision IS NULL AND user_id IS NOT NULL AND status <> 'failed'`);
    return this.page(where.join(' AND '), params, limit, cursor);
  }

  private async page(where: string, params: unknown[], limit: number, cursor?: string): Promise<Page<PrivacyRequestView>> {
    // Keyset over (created_at, id), newest first.
    const after = decodeCursor(cursor);
    const p = [...params];
    let keyset = '';
    if (after) {
      p.push(after.at, after.id);
      keyset = ` AND (created_at, id) < ($${p.length - 1}::timestamptz, $${p.length}::uuid)`;
    }
    const rows: RequestRow[] = await this.ds.query(`SELECT * FROM requests WHERE ${where}${keyset} ORDER BY created_at DESC, id DESC LIMIT ${limit + 1}`, p);
    const { page, nextCursor } = keysetPage(rows, limit, (r) => [new Date(r.created_at), r.id]);
    return { data: await this.views(page), nextCursor };
  }

  async views(rows: RequestRow[]): Promise<PrivacyRequestView[]> {
    if (rows.length === 0) return [];
    const ids = rows.map((r) => r.id);
    const steps: StepRow[] = await this.ds.query(`SELECT * FROM request_steps WHERE request_id = ANY($1) ORDER BY phase, service`, [ids]);
    const notices: NoticeRow[] = await this.ds.query(`SELECT * FROM processor_notices WHERE request_id = ANY($1) ORDER BY at, processor`, [ids]);
    const held: { user_id: string }[] = await this.ds.query(
      `SELECT DISTINCT user_id FROM legal_holds WHERE released_at IS NULL AND user_id = ANY($1)`,
      [rows.map((r) => r.user_id).filter(Boolean)],
    );
    const heldSet = new Set(held.map((h) => h.user_id));
    return rows.map((r) => ({
      id: r.id,
      type: r.type,
      scope: r.scope,
      status: r.status,
      createdAt: iso(r.created_at)!,
      dueAt: iso(r.due_at)!,
      completedAt: iso(r.completed_at),
      escalatedAt: iso(r.escalated_at),
      downloadUntil: r.wrapped_key ? iso(r.download_until) : null,
      suspended: r.type === 'erasure' && (r.status === 'received' || r.status === 'in_progress') && !!r.user_id && heldSet.has(r.user_id),
      failure: r.failure,
      decision: decisionView(r),
      steps: steps
        .filter((s) => s.request_id === r.id)
        .map((s) => ({ service: s.service, action: s.action, status: s.status, attempts: s.attempts, lastError: s.last_error, completedAt: iso(s.completed_at), result: s.result })),
      processorNotices: notices
        .filter((n) => n.request_id === r.id)
        .map((n) => ({ processor: n.processor, name: PROCESSORS.find((p) => p.id === n.processor)?.name ?? n.processor, service: n.service, action: n.action, status: n.status, at: iso(n.at)! })),
    }));
  }
}
