import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Where ended sessions' ids are NOTIFYed (one channel per database: the schema is identity's alone). */
export const SESSION_ENDED_CHANNEL = 'ally_identity_session_ended';

/**
 * Every session that ends (revoked by whatever path, the CLI included, or
 * deleted by an erasure) is NOTIFYed at commit with its id, so identity can
 * tell the gateways at once instead of their next check.
 */
export class SessionEndNotify1766200000000 implements MigrationInterface {
  name = 'SessionEndNotify1766200000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE FUNCTION session_ended_notify() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN PERFORM pg_notify('${SESSION_ENDED_CHANNEL}', OLD.id::text); RETURN NULL; END $$`);
    await q.query(`
      CREATE TRIGGER session_revoked_notify AFTER UPDATE OF revoked_at ON sessions
      FOR EACH ROW WHEN (OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL) EXECUTE FUNCTION session_ended_notify()`);
    await q.query(`
      CREATE TRIGGER session_deleted_notify AFTER DELETE ON sessions
      FOR EACH ROW WHEN (OLD.revoked_at IS NULL) EXECUTE FUNCTION session_ended_notify()`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TRIGGER session_deleted_notify ON sessions`);
    await q.query(`DROP TRIGGER session_revoked_notify ON sessions`);
    await q.query(`DROP FUNCTION session_ended_notify()`);
  }
}
