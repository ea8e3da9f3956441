import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Private signing keys sealed under IDENTITY_KEK instead of stored in the clear; identity seals older rows at start. */
export class SealedSigningKeys1765100000000 implements MigrationInterface {
  name = 'SealedSigningKeys1765100000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE signing_keys ADD COLUMN private_jwk_sealed bytea`);
    await q.query(`ALTER TABLE signing_keys ALTER COLUMN private_jwk DROP NOT NULL`);
    await q.query(`ALTER TABLE signing_keys ADD CONSTRAINT signing_keys_private_key CHECK (private_jwk IS NOT NULL OR private_jwk_sealed IS NOT NULL)`);
  }

  async down(q: QueryRunner): Promise<void> {
    // A sealed key cannot be put back in the clear without the KEK: it goes, and identity makes a new one at start.
    await q.query(`DELETE FROM signing_keys WHERE private_jwk IS NULL`);
    await q.query(`ALTER TABLE signing_keys DROP CONSTRAINT signing_keys_private_key`);
    await q.query(`ALTER TABLE signing_keys ALTER COLUMN private_jwk SET NOT NULL`);
    await q.query(`ALTER TABLE signing_keys DROP COLUMN private_jwk_sealed`);
  }
}
