import type { MigrationInterface, QueryRunner } from 'typeorm';

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
             decision_reason = coalesce((SELECT a.details->>'reason' FROM audit_log a WHERE a.request_id = r.id AND a.action = 'request.' || (r.details->>'decision') ORDER BY a.seq LIMIT 1), ''),
             decided_at = (details->>'decidedAt')::timestamptz, takes_effect_at = (details->>'decidedAt')::timestamptz,
             took_effect_at = (details->>'decidedAt')::timestamptz,
             details = details - 'decision' - 'decidedAt'
       WHERE details ? 'decision'`);
    // Objections decided before this were completed at once; undecided ones now wait for their decision.
    await q.query(`UPDATE requests SET status = 'in_progress', completed_at = NULL WHERE type = 'objection' AND status = 'completed' AND decision IS NULL AND user_id IS NOT NULL`);
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
