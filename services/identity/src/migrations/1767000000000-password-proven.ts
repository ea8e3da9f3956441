import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * When the password in place was chosen through a reset link (proof of the
 * address). One chosen at registration may be a squatter's, also after the
 * owner confirmed the address: the first reset (or single sign-on) then ends
 * what was set up under it. Passwords of before this release count as chosen
 * at registration.
 */
export class PasswordProven1767000000000 implements MigrationInterface {
  name = 'PasswordProven1767000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE users ADD COLUMN password_proven_at timestamptz`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE users DROP COLUMN password_proven_at`);
  }
}
