import type { MigrationInterface, QueryRunner } from 'typeorm';
import { createIndexConcurrently } from '@ally/persistence';

/** Retention deletes a conversation's older messages while it is still in use: they are found by their age. */
export class MessagesByAge1767600000000 implements MigrationInterface {
  name = 'MessagesByAge1767600000000';
  /** Built beside live turns (CONCURRENTLY), which cannot be inside a transaction. */
  transaction = false;

  async up(q: QueryRunner): Promise<void> {
    await createIndexConcurrently(q, 'messages_created_idx', 'messages (created_at)');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX CONCURRENTLY IF EXISTS messages_created_idx`);
  }
}
