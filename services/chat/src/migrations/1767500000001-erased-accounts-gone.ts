import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * An erasure mark stays until identity has deleted the account (its `user.deleted`), not a day after chat's step:
 * identity erases last and may wait longer (another service retrying, the hold check), and the subject, still
 * signed in meanwhile, wrote chat history no one would erase.
 */
export class ErasedAccountsGone1767500000001 implements MigrationInterface {
  name = 'ErasedAccountsGone1767500000001';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE erased_subjects ADD COLUMN account_deleted_at timestamptz`);
    // Marks of before go by the rule they were written under.
    await q.query(`UPDATE erased_subjects SET account_deleted_at = erased_at`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE erased_subjects DROP COLUMN account_deleted_at`);
  }
}
