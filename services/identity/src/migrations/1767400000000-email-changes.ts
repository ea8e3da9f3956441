import type { MigrationInterface, QueryRunner } from 'typeorm';

/** A change of address waits for the link mailed to the new one: its token carries the address (`new_email`). */
export class EmailChanges1767400000000 implements MigrationInterface {
  name = 'EmailChanges1767400000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE one_time_tokens ADD COLUMN new_email text`);
    await q.query(`ALTER TABLE one_time_tokens DROP CONSTRAINT one_time_tokens_purpose_check`);
    await q.query(`ALTER TABLE one_time_tokens ADD CONSTRAINT one_time_tokens_purpose_check CHECK (purpose IN ('verify_email', 'password_reset', 'email_change'))`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DELETE FROM one_time_tokens WHERE purpose = 'email_change'`);
    await q.query(`ALTER TABLE one_time_tokens DROP CONSTRAINT one_time_tokens_purpose_check`);
    await q.query(`ALTER TABLE one_time_tokens ADD CONSTRAINT one_time_tokens_purpose_check CHECK (purpose IN ('verify_email', 'password_reset'))`);
    await q.query(`ALTER TABLE one_time_tokens DROP COLUMN new_email`);
  }
}
