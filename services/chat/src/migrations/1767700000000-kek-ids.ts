import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Which key-encryption key wrapped a data key, and keyed an erasure mark (a fingerprint, not the key): so the
 * keys under an earlier CHAT_KEK can be found and re-wrapped, a start without the KEK some of them need is
 * refused, and an operator told when an earlier key is no longer needed. Rows of before carry none (the one KEK
 * of then); `keks` dates when each KEK first wrapped, so a re-wrap run by a replica with an older one is refused.
 */
export class KekIds1767700000000 implements MigrationInterface {
  name = 'KekIds1767700000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE data_keys ADD COLUMN kek_id text`);
    await q.query(`ALTER TABLE erased_subjects ADD COLUMN kek_id text`);
    await q.query(`CREATE TABLE keks (id text PRIMARY KEY, first_used_at timestamptz NOT NULL DEFAULT now())`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE keks`);
    await q.query(`ALTER TABLE erased_subjects DROP COLUMN kek_id`);
    await q.query(`ALTER TABLE data_keys DROP COLUMN kek_id`);
  }
}
