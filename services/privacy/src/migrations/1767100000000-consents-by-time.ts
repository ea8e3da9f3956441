import type { MigrationInterface, QueryRunner } from 'typeorm';
import { createIndexConcurrently } from '@ally/persistence';

/** A subject's decisions of the last day are counted before new ones are recorded (MAX_CONSENT_DECISIONS_PER_DAY). */
export class ConsentsByTime1767100000000 implements MigrationInterface {
  name = 'ConsentsByTime1767100000000';
  /** Built beside consents being recorded (CONCURRENTLY), which cannot be inside a transaction. */
  transaction = false;

  async up(q: QueryRunner): Promise<void> {
    await createIndexConcurrently(q, 'consents_subject_time_idx', 'consents (subject_id, recorded_at)');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX consents_subject_time_idx`);
  }
}
