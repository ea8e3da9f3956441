import type { MigrationInterface, QueryRunner } from 'typeorm';
import { lowerCaseIds } from '@ally/persistence';

/** Organisation ids in workspaces typed in capitals before the API lower-cased them: one spelling, so they are found again. */
export class LowerCaseWorkspaces1765400000000 implements MigrationInterface {
  name = 'LowerCaseWorkspaces1765400000000';

  async up(q: QueryRunner): Promise<void> {
    await lowerCaseIds(q, [['api_keys', 'workspace']]);
  }

  async down(): Promise<void> {
    // Nothing to undo: the capitals carried no meaning.
  }
}
