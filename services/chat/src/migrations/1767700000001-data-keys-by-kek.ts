import type { MigrationInterface, QueryRunner } from 'typeorm';
import { createIndexConcurrently } from '@ally/persistence';

/** chat's start finds the KEKs its data keys are under, and the newest key under each, without reading them all. */
export class DataKeysByKek1767700000001 implements MigrationInterface {
  name = 'DataKeysByKek1767700000001';
  /** Built beside live turns (CONCURRENTLY), which cannot be inside a transaction. */
  transaction = false;

  async up(q: QueryRunner): Promise<void> {
    await createIndexConcurrently(q, 'data_keys_kek_idx', 'data_keys (kek_id, created_at)');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX CONCURRENTLY IF EXISTS data_keys_kek_idx`);
  }
}
