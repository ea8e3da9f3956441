import type { MigrationInterface, QueryRunner } from 'typeorm';
import { PrivacyOutbox } from '../common/privacy-outbox.js';
import { objectableCategories, planSteps } from '../requests/request-plan.js';

/**
 * Compliance's decision on a restriction or an objection in columns of its
 * own, so the subject can be shown it and compliance can list what awaits
 * one: the outcome, the words to the subject, and when it takes (and took)
 * effect. A lift takes effect only after the subject was told (Art. 18(3)
 * GDPR). Decisions taken before this took effect when they were taken.
 */
export class Decisions1765600000000 implements MigrationInterface {
  name = 'Decisions1765600000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE requests
        ADD COLUMN decision text CHECK (decision IN ('lift', 'uphold', 'reject')),
        ADD COLUMN decision_reason text,
        ADD COLUMN decided_at timestamptz,
        ADD COLUMN takes_effect_at timestamptz,
        ADD COLUMN took_effect_at timestamptz`);
    await q.query(`
      UPDATE requests r SET decision = details->>'decision',
             -- Compliance's words to the subject; none kept for a subject erased since.
             decision_reason = CASE WHEN r.user_id IS NULL THEN '' ELSE coalesce((SELECT a.details->>'reason' FROM audit_log a WHERE a.request_id = r.id AND a.action = 'request.' || (r.details->>'decision') ORDER BY a.seq LIMIT 1), '') END,
             decided_at = (details->>'decidedAt')::timestamptz, takes_effect_at = (details->>'decidedAt')::timestamptz,
             took_effect_at = (details->>'decidedAt')::timestamptz,
             details = details - 'decision' - 'decidedAt'
       WHERE details ? 'decision'`);
    // Objections completed before this without a decision wait for one again; the services hear of them
    // once more, as identity now pauses the login audit from the objection on (Art. 21(1)).
    const reopened: { id: string; user_id: string; scope: string }[] = await q.query(
      `UPDATE requests SET status = 'in_progress', completed_at = NULL WHERE type = 'objection' AND status = 'completed' AND decision IS NULL AND user_id IS NOT NULL
       RETURNING id, user_id, scope`,
    ).then(([rows]: [typeof reopened]) => rows);
    const outbox = new PrivacyOutbox();
    const categories = planSteps('objection').flatMap((s) => objectableCategories(s.service));
    for (const r of reopened) {
      await outbox.append(q.manager, 'privacy.subject.objected', { requestId: r.id, userId: r.user_id, scope: r.scope, categories }, { subject: { userId: r.user_id } });
    }
    await q.query(`CREATE INDEX requests_lift_due ON requests (takes_effect_at) WHERE decision = 'lift' AND took_effect_at IS NULL`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX requests_lift_due`);
    await q.query(`
      UPDATE requests SET details = details || jsonb_build_object('decision', decision, 'decidedAt', decided_at)
       WHERE decision IS NOT NULL`);
    await q.query(`ALTER TABLE requests DROP COLUMN decision, DROP COLUMN decision_reason, DROP COLUMN decided_at, DROP COLUMN takes_effect_at, DROP COLUMN took_effect_at`);
  }
}
