import type { MigrationInterface, QueryRunner } from 'typeorm';
import { createIndexConcurrently } from '@ally/persistence';

/**
 * Failed sign-ins are counted per network (an IPv6 address's /64, an IPv4
 * address itself), not per address: one IPv6 subscriber may take a fresh
 * address for every guess. Rows from before count from now on (the window is minutes).
 */
export class LoginAuditNetwork1767200000000 implements MigrationInterface {
  name = 'LoginAuditNetwork1767200000000';
  /** The index is built beside sign-ins (CONCURRENTLY), which cannot be inside a transaction. */
  transaction = false;

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE login_audit ADD COLUMN IF NOT EXISTS network text`);
    await createIndexConcurrently(q, 'login_audit_network_idx', 'login_audit (network, occurred_at)');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX login_audit_network_idx`);
    await q.query(`ALTER TABLE login_audit DROP COLUMN network`);
  }
}
