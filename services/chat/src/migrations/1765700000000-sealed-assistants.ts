import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A private assistant's name and instructions sealed under its creator's data
 * key, like their messages, so an erasure shreds every copy (backups too).
 * An organisation's assistant belongs to the organisation and stays readable
 * text. Rows written before are sealed by chat at its start
 * (`AssistantsService.sealPlaintext`), which needs the KEK this cannot see.
 */
export class SealedAssistants1765700000000 implements MigrationInterface {
  name = 'SealedAssistants1765700000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE assistants ADD COLUMN sealed bytea, ALTER COLUMN name DROP NOT NULL, ALTER COLUMN instructions DROP NOT NULL`);
  }

  async down(): Promise<void> {
    // Sealed texts cannot be opened here (the KEK is the service's); leaving the columns is the safe way back.
  }
}
