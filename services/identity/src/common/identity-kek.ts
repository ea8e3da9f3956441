import type { Logger } from 'pino';
import { keyEncryptionKey } from '@ally/platform';
import type { IdentityConfig } from '../config.js';

/** IDENTITY_KEK, or in development and tests a fixed key (with a warning naming what it protects). */
export const identityKek = (config: IdentityConfig, logger: Logger, protects: string): Buffer =>
  keyEncryptionKey(config.IDENTITY_KEK, { variable: 'IDENTITY_KEK', protects, nodeEnv: config.NODE_ENV, logger, seed: 'ally-development-identity-kek' });
