import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Subjects erased from one workspace (`private` or an organisation), by pseudonym: usage of theirs there that
 * arrives after the erasure (an answer the erasure stopped, an event the ledger consumer had not reached) is
 * booked as the erasure left the rest, naming nobody.
 */
export class ErasedWorkspaces1767600000001 implements MigrationInterface {
  name = 'ErasedWorkspaces1767600000001';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE erased_workspaces (
      alias text NOT NULL,
      workspace text NOT NULL,
      erased_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (alias, workspace)
    )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE erased_workspaces`);
  }
}
