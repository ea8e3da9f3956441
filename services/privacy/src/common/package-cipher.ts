import { Inject, Injectable } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { keyEncryptionKey, LOGGER, open, seal } from '@ally/platform';
import { PRIVACY_CONFIG, type PrivacyConfig } from '../config.js';

/**
 * Envelope encryption of export data at rest: each request gets a random
 * 256-bit data key, stored only wrapped (AES-256-GCM) by PRIVACY_KEK; each
 * service's part and the final package are sealed under it with the request
 * id as associated data. Deleting the wrapped key (expiry, erasure) makes
 * every copy unreadable. A KMS can replace the KEK by implementing wrap/unwrap.
 */
@Injectable()
export class PackageCipher {
  private readonly kek: Buffer;

  constructor(@Inject(PRIVACY_CONFIG) config: PrivacyConfig, @Inject(LOGGER) logger: Logger) {
    this.kek = keyEncryptionKey(config.PRIVACY_KEK, { variable: 'PRIVACY_KEK', protects: 'export packages are encrypted', nodeEnv: config.NODE_ENV, logger, seed: 'ally-development-privacy-kek' });
  }

  newWrappedKey(requestId: string): Buffer {
    return seal(this.kek, randomBytes(32), `dk:${requestId}`);
  }

  seal(wrappedKey: Buffer, requestId: string, plain: Buffer, label: string): Buffer {
    return seal(this.unwrap(wrappedKey, requestId), plain, `${requestId}:${label}`);
  }

  open(wrappedKey: Buffer, requestId: string, sealed: Buffer, label: string): Buffer {
    return open(this.unwrap(wrappedKey, requestId), sealed, `${requestId}:${label}`);
  }

  private unwrap(wrappedKey: Buffer, requestId: string): Buffer {
    return open(this.kek, wrappedKey, `dk:${requestId}`);
  }
}
