import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The organisation a mail is about (an invitation to it, its billing), so a
 * data-subject export of one workspace holds that workspace's mails only.
 * Mails logged before say nothing of it and count as the account's own.
 */
export class MailWorkspace1765900000000 implements MigrationInterface {
  name = 'MailWorkspace1765900000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE deliveries ADD COLUMN org_id uuid`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE deliveries DROP COLUMN org_id`);
  }
}
