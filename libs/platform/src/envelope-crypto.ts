import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import type { Logger } from 'pino';

const IV = 12;
const TAG = 16;

/** AES-256-GCM under `key`, bound to `aad`: iv ‖ tag ‖ ciphertext. */
export function seal(key: Buffer, plain: Buffer, aad: string): Buffer {
  const iv = randomBytes(IV);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(aad));
  const body = Buffer.concat([cipher.update(plain), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]);
}

/** The plaintext of `seal`'s output; throws when the key, the `aad` or a byte differs. */
export function open(key: Buffer, sealed: Buffer, aad: string): Buffer {
  if (sealed.length < IV + TAG) throw new Error('sealed data too short');
  // The full 16-byte tag only: a shortened one would weaken the authentication.
  const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, IV), { authTagLength: TAG });
  decipher.setAAD(Buffer.from(aad));
  decipher.setAuthTag(sealed.subarray(IV, IV + TAG));
  return Buffer.concat([decipher.update(sealed.subarray(IV + TAG)), decipher.final()]);
}

/**
 * The key-encryption key of envelope encryption: `configured` (32 bytes,
 * base64, from the environment), or outside production, where the service's
 * config refuses to start without it, a fixed development key, said in the log.
 */
export function keyEncryptionKey(
  configured: string | undefined,
  dev: { variable: string; protects: string; nodeEnv: string; logger: Logger; seed: string },
): Buffer {
  if (configured) return Buffer.from(configured, 'base64');
  dev.logger.warn(`${dev.nodeEnv}: no ${dev.variable}, ${dev.protects} with a development key`);
  return createHash('sha256').update(dev.seed).digest();
}
