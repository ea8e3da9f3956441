import type { MigrationInterface, QueryRunner } from 'typeorm';

/** The invitations a person sent lately are counted before each new one (MAX_INVITATIONS_PER_DAY); an erasure clears their name from them. */
export class InvitationsByInviter1767100000000 implements MigrationInterface {
  name = 'InvitationsByInviter1767100000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE INDEX invitations_invited_by_idx ON invitations (invited_by, created_at)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX invitations_invited_by_idx`);
  }
}
