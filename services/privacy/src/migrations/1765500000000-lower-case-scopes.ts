import type { MigrationInterface, QueryRunner } from 'typeorm';
import { lowerCaseIds } from '@ally/persistence';

/** Organisation ids in scopes typed in capitals before the API lower-cased them: one spelling, so they are found again. */
export class LowerCaseScopes1765500000000 implements MigrationInterface {
  name = 'LowerCaseScopes1765500000000';

  async up(q: QueryRunner): Promise<void> {
    await lowerCaseIds(q, [['requests', 'scope'], ['tombstones', 'scope']]);
  }

  async down(): Promise<void> {
    // Nothing to undo: the capitals carried no meaning.
  }
}
