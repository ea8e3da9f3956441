import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The policy replica keeps when each row's state happened (the event's
 * occurredAt, or when chat asked identity), so an older event that arrives
 * late (a redelivery, another replica's consumer) cannot undo a newer one; a
 * removed membership leaves a tombstone for the same reason.
 */
export class ReplicaOrder1765300000000 implements MigrationInterface {
  name = 'ReplicaOrder1765300000000';

  async up(q: QueryRunner): Promise<void> {
    // Rows from before know no time: any event may update them.
    await q.query(`ALTER TABLE memberships ADD COLUMN updated_at timestamptz NOT NULL DEFAULT '-infinity'`);
    await q.query(`ALTER TABLE memberships ALTER COLUMN updated_at SET DEFAULT now()`);
    await q.query(`
      CREATE TABLE membership_removals (
        org_id uuid NOT NULL,
        user_id uuid NOT NULL,
        removed_at timestamptz NOT NULL,
        PRIMARY KEY (org_id, user_id)
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE membership_removals`);
    await q.query(`ALTER TABLE memberships DROP COLUMN updated_at`);
  }
}
