import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The person a mail is about when it is not its recipient (the inviter an
 * invitation names): their erasure takes the mail too, sent or waiting.
 */
export class MailAbout1766500000000 implements MigrationInterface {
  name = 'MailAbout1766500000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE deliveries ADD COLUMN about_user_id uuid`);
    await q.query(`CREATE INDEX deliveries_about_user ON deliveries (about_user_id) WHERE about_user_id IS NOT NULL`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE deliveries DROP COLUMN about_user_id`);
  }
}
