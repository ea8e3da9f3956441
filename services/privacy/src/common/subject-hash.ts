import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import { createHmac } from 'node:crypto';
import type { Logger } from 'pino';
import { LOGGER } from '@ally/platform';
import { PRIVACY_CONFIG, type PrivacyConfig } from '../config.js';

/**
 * A keyed hash (HMAC-SHA256 with a secret salt) of a user id: tombstones and
 * the audit trail keep it instead of the id, so they prove what happened to a
 * subject without identifying them to anyone who lacks the salt.
 */
@Injectable()
export class SubjectHasher implements OnModuleInit {
  private readonly salt: string;

  constructor(
    @Inject(PRIVACY_CONFIG) private readonly config: PrivacyConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    this.salt = config.PRIVACY_SUBJECT_SALT ?? 'ally-development-subject-salt';
  }

  onModuleInit() {
    if (!this.config.PRIVACY_SUBJECT_SALT) this.logger.warn(`${this.config.NODE_ENV}: no PRIVACY_SUBJECT_SALT, subject hashes use a development salt`);
  }

  hash(userId: string): string {
    return createHmac('sha256', this.salt).update(userId.toLowerCase()).digest('hex');
  }
}
