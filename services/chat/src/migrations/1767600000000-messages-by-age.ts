import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Retention deletes a conversation's older messages while it is still in use: they are found by their age. */
export class MessagesByAge1767600000000 implements MigrationInterface {
  name = 'MessagesByAge1767600000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE INDEX messages_created_idx ON messages (created_at)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX messages_created_idx`);
  }
}
