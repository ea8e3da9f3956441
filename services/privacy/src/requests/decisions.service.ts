import { Inject, Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { createHash } from 'node:crypto';
import { ProblemError, type Actor, type PrivacyDecision, type PrivacyRequestView } from '@ally/contracts';
import { AuditTrail } from '../audit/audit-trail.service.js';
import { PrivacyRequestNotFound } from '../common/privacy-errors.js';
import { lockSubjectRequests } from '../common/subject-requests-lock.js';
import { PrivacyOutbox } from '../common/privacy-outbox.js';
import { PRIVACY_CONFIG, type PrivacyConfig } from '../config.js';
import { LegalHoldsService } from '../legal-holds/legal-holds.service.js';
import { RequestFinalizer } from '../sagas/request-finalizer.js';
import { objectedCategories } from './request-plan.js';
import { RequestsRepository, type RequestRow } from './requests.repository.js';

/**
 * Compliance's decision on a restriction (lifted) or an objection (upheld, or
 * rejected for compelling grounds): recorded with the words to the subject,
 * audited, and mailed to the subject by notify. An objection's outcome holds
 * at once and completes the request. A lift takes effect only once the
 * subject had `PRIVACY_LIFT_NOTICE_HOURS` to read of it (Art. 18(3) GDPR:
 * informed before the restriction is lifted); until then processing stays
 * restricted and retention keeps holding the subject's data.
 */
@Injectable()
export class DecisionsService {
  constructor(
    private readonly ds: DataSource,
    private readonly repo: RequestsRepository,
    private readonly finalizer: RequestFinalizer,
    private readonly audit: AuditTrail,
    private readonly outbox: PrivacyOutbox,
    private readonly holds: LegalHoldsService,
    @Inject(PRIVACY_CONFIG) private readonly config: PrivacyConfig,
  ) {}

  async decide(actor: Actor, input: { id: string; decision: PrivacyDecision; reason: string }): Promise<PrivacyRequestView> {
    await this.ds.transaction(async (em) => {
      const unlocked = await this.repo.find(input.id, em);
      if (!unlocked) throw new PrivacyRequestNotFound();
      // In line with the subject's other requests being filed and their erasure finishing (which reads and ends their open
      // requests and clears the outbox of them): a decision either comes before all of that, or finds the subject gone.
      if (unlocked.user_id) await lockSubjectRequests(em, unlocked.user_id);
      // The row lock makes concurrent decisions queue: the second sees the first's and answers 409, never a second event.
      const row = await this.repo.find(input.id, em, { forUpdate: true });
      if (!row) throw new PrivacyRequestNotFound();
      // Erased since: there is no one left whose processing the decision could change (the list still shows the request).
      if (!row.user_id) throw new ProblemError(409, 'The subject of this request was erased since; there is nothing left to decide');
      const fits = (row.type === 'restriction' && input.decision === 'lift') || (row.type === 'objection' && input.decision !== 'lift');
      if (!fits) throw new ProblemError(409, `${/^[aeiou]/.test(row.type) ? 'An' : 'A'} ${row.type} request cannot be decided with "${input.decision}"`);
      if (row.decision) throw new ProblemError(409, 'This request was already decided');
      // Nobody decides their own request: another member of the compliance team does.
      if (row.user_id === actor.userId) throw new ProblemError(403, 'This is your own request: another member of the compliance team decides it');
      const decidedAt = new Date();
      const takesEffectAt = input.decision === 'lift' ? new Date(decidedAt.getTime() + this.config.PRIVACY_LIFT_NOTICE_HOURS * 3_600_000) : decidedAt;
      const subject = { subject: { userId: row.user_id } };
      // An upheld objection's stop comes before the decision that ends the pause since the objection.
      if (input.decision === 'uphold') {
        // Under a legal hold (Art. 17(3)(e)) or a restriction (Art. 18) of the whole account the data stays: only its
        // processing stops. What an objection reaches belongs to the account, which a workspace's restriction leaves free.
        const held = await this.holds.held(em);
        const keep = held.userIds.includes(row.user_id) && !held.scopes.some((h) => h.userId === row.user_id);
        await this.outbox.append(em, 'privacy.subject.objection-upheld', { requestId: row.id, userId: row.user_id, scope: row.scope, categories: objectedCategories(), keep }, subject);
      }
      // The subject is told before any lift it announces.
      await this.outbox.append(
        em,
        'privacy.request.decided',
        { requestId: row.id, userId: row.user_id, type: row.type as 'restriction' | 'objection', decision: input.decision, reason: input.reason, takesEffectAt: takesEffectAt.toISOString() },
        subject,
      );
      await em.query(
        `UPDATE requests SET decision = $2, decision_reason = $3, decided_at = $4, takes_effect_at = $5, took_effect_at = CASE WHEN $2 = 'lift' THEN NULL ELSE $4::timestamptz END, updated_at = now()
          WHERE id = $1`,
        [row.id, input.decision, input.reason, decidedAt, takesEffectAt],
      );
      await this.audit.append(em, {
        actor: `staff:${actor.userId}`,
        action: `request.${input.decision}`,
        requestId: row.id,
        subjectHash: row.subject_hash,
        // The words may name people: the request keeps them (until an erasure), the chain their digest.
        details: { reasonSha256: createHash('sha256').update(input.reason).digest('hex'), takesEffectAt: takesEffectAt.toISOString() },
      });
      if (input.decision === 'lift' && takesEffectAt <= decidedAt) await this.lift(em, { ...row, decision: input.decision });
      // An objection whose services all heard of it is done with its decision (otherwise the saga finishes it).
      if (row.type === 'objection' && !(await em.query(`SELECT 1 FROM request_steps WHERE request_id = $1 AND status <> 'completed' LIMIT 1`, [row.id])).length) {
        await this.finalizer.finalize(em, row);
      }
    });
    return (await this.repo.view(input.id))!;
  }

  /**
   * Lifts whose notice ran out take effect (the saga worker's pass); answers how many. Each in a transaction of its
   * own that takes the subject's request lock first, as a decision does: an erasure finishing meanwhile is either
   * seen (no event names the subject) or waits, and the two never hold each other's locks.
   */
  async liftDue(): Promise<number> {
    const due: { id: string; user_id: string | null }[] = await this.ds.query(
      `SELECT id, user_id FROM requests WHERE decision = 'lift' AND took_effect_at IS NULL AND takes_effect_at <= now() ORDER BY takes_effect_at LIMIT 100`,
    );
    let lifted = 0;
    for (const { id, user_id: userId } of due) {
      await this.ds.transaction(async (em) => {
        if (userId) await lockSubjectRequests(em, userId);
        const [row]: RequestRow[] = await em.query(`SELECT * FROM requests WHERE id = $1 AND took_effect_at IS NULL FOR UPDATE SKIP LOCKED`, [id]);
        if (!row) return;
        await this.lift(em, row);
        lifted++;
      });
    }
    return lifted;
  }

  /** Processing may resume: the services hear of it by event (none once the subject was erased: nothing is left to restrict). */
  private async lift(em: EntityManager, row: RequestRow): Promise<void> {
    if (row.user_id) {
      await this.outbox.append(em, 'privacy.subject.restriction-lifted', { requestId: row.id, userId: row.user_id, scope: row.scope }, { subject: { userId: row.user_id } });
    }
    await em.query(`UPDATE requests SET took_effect_at = now(), updated_at = now() WHERE id = $1`, [row.id]);
    await this.audit.append(em, { actor: 'system', action: 'restriction.lifted', requestId: row.id, subjectHash: row.subject_hash, details: { subjectErased: !row.user_id } });
  }
}
