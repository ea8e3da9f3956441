import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * One row per invitation a person sent, kept a day (identity's housekeeping): what MAX_INVITATIONS_PER_DAY
 * counts. Not the invitations themselves, which a revocation or a newer invitation to the same address
 * deletes while their mails went out.
 */
export class InvitationsSent1767100000000 implements MigrationInterface {
  name = 'InvitationsSent1767100000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE invitations_sent (user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE, sent_at timestamptz NOT NULL DEFAULT now())`);
    await q.query(`CREATE INDEX invitations_sent_user_idx ON invitations_sent (user_id, sent_at)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE invitations_sent`);
  }
}
