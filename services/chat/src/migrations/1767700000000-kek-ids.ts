import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Which key-encryption key wrapped a data key, and keyed an erasure mark (a fingerprint, not the key): so the
 * keys under an earlier CHAT_KEK can be found and re-wrapped, and an operator told when the earlier key is no
 * longer needed. Rows of before carry none (the KEK of then); `rewrap-data-keys` labels data keys.
 */
export class KekIds1767700000000 implements MigrationInterface {
  name = 'KekIds1767700000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE data_keys ADD COLUMN kek_id text`);
    await q.query(`ALTER TABLE erased_subjects ADD COLUMN kek_id text`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE erased_subjects DROP COLUMN kek_id`);
    await q.query(`ALTER TABLE data_keys DROP COLUMN kek_id`);
  }
}
