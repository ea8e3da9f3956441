import { Inject, Injectable } from '@nestjs/common';
import { createHmac, hkdfSync } from 'node:crypto';
import type { Logger } from 'pino';
import { LOGGER } from '@ally/platform';
import { IDENTITY_CONFIG, type IdentityConfig } from '../config.js';
import { identityKek } from './identity-kek.js';
import { hashSecret } from './secrets.js';

/** The key of the login audit's address hashes, derived from IDENTITY_KEK: no secret of its own to keep. */
export const addressHashKey = (kek: Buffer): Buffer => Buffer.from(hkdfSync('sha256', kek, Buffer.alloc(0), 'ally identity: login audit addresses', 32));

/** An address as the login audit keeps it under `key` (`addressHashKey`). */
export const keyedAddressHash = (key: Buffer, email: string): string => createHmac('sha256', key).update(email).digest('base64url');

/**
 * What the login audit keeps of the address a sign-in named (it counts
 * failures per account, and is all it keeps of a user who objected to the
 * audit): an HMAC keyed from IDENTITY_KEK, so a copy of the database does not
 * tell whether a known address tried to sign in; a plain hash is reversed by
 * trying addresses. Rows of releases before carry that plain hash: `all`
 * finds them for an export or an erasure until the audit's retention ends them.
 */
@Injectable()
export class AddressHashes {
  private readonly key: Buffer;

  constructor(@Inject(IDENTITY_CONFIG) config: IdentityConfig, @Inject(LOGGER) logger: Logger) {
    this.key = addressHashKey(identityKek(config, logger, "the login audit's address hashes are keyed"));
  }

  of(email: string): string {
    return keyedAddressHash(this.key, email);
  }

  all(email: string): string[] {
    return [this.of(email), hashSecret(email)];
  }
}
