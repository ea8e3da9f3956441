import { Inject, Injectable } from '@nestjs/common';
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { LOGGER } from '@ally/platform';
import { PRIVACY_CONFIG, type PrivacyConfig } from '../config.js';

const IV = 12;
const TAG = 16;

export function seal(key: Buffer, plain: Buffer, aad: string): Buffer {
  const iv = randomBytes(IV);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(aad));
  const body = Buffer.concat([cipher.update(plain), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]);
}

export function open(key: Buffer, sealed: Buffer, aad: string): Buffer {
  const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, IV));
  decipher.setAAD(Buffer.from(aad));
  decipher.setAuthTag(sealed.subarray(IV, IV + TAG));
  return Buffer.concat([decipher.update(sealed.subarray(IV + TAG)), decipher.final()]);
}

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
    if (config.PRIVACY_KEK) {
      this.kek = Buffer.from(config.PRIVACY_KEK, 'base64');
    } else {
      // Only outside production (the config refuses it there).
      logger.warn(`${config.NODE_ENV}: no PRIVACY_KEK, export packages are encrypted with a development key`);
      this.kek = createHash('sha256').update('ally-development-privacy-kek').digest();
    }
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
