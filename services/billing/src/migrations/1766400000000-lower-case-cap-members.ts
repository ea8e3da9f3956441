import type { MigrationInterface, QueryRunner } from 'typeorm';
import { lowerCaseIds } from '@ally/persistence';

/** Members' caps whose id was sent in capitals before the API lower-cased it: one spelling, so quota checks and removals find them. */
export class LowerCaseCapMembers1766400000000 implements MigrationInterface {
  name = 'LowerCaseCapMembers1766400000000';

  async up(q: QueryRunner): Promise<void> {
    await lowerCaseIds(q, [['caps', 'user_id', 'keyed']]);
  }

  async down(): Promise<void> {
    // Nothing to undo: the capitals carried no meaning.
  }
}
