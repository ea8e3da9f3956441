import { Inject, Injectable } from '@nestjs/common';
import { createHash, createHmac } from 'node:crypto';
import type { Logger } from 'pino';
import type { EntityManager } from 'typeorm';
import { LOGGER } from '@ally/platform';
import { NOTIFY_CONFIG, type NotifyConfig } from '../config.js';

const normalised = (email: string) => email.trim().toLowerCase();

/**
 * What the delivery log and the suppression list keep instead of an address:
 * an HMAC-SHA256 keyed with `NOTIFY_ADDRESS_KEY`, so a copy of the database
 * (a backup) does not tell whether a known address is in it; a plain hash of
 * an address is reversed by trying addresses. Rows written before this
 * release carry that plain hash: `all` finds them too, and `upgradeSuppression`
 * rewrites a suppression whenever its address is at hand (a mail to it, a
 * webhook about it, its owner's erasure).
 */
@Injectable()
export class AddressHashes {
  private readonly key: string;

  constructor(@Inject(NOTIFY_CONFIG) config: NotifyConfig, @Inject(LOGGER) logger: Logger) {
    this.key = config.NOTIFY_ADDRESS_KEY ?? 'ally-development-address-key';
    if (!config.NOTIFY_ADDRESS_KEY) logger.warn(`${config.NODE_ENV}: no NOTIFY_ADDRESS_KEY, addresses in the delivery log and the suppression list are keyed with a development key`);
  }

  /** The hash a row written now keeps. */
  of(email: string): string {
    return createHmac('sha256', this.key).update(normalised(email)).digest('hex');
  }

  /** Every hash a row about the address may carry: this release's, and the plain one of rows written before it. */
  all(email: string): string[] {
    return [this.of(email), createHash('sha256').update(normalised(email)).digest('hex')];
  }

  /**
   * A suppression of the address under the plain hash is kept under the keyed one from now on (the sends check
   * that): moved, or dropped where the keyed one is there already (a bounce since).
   */
  async upgradeSuppression(em: Pick<EntityManager, 'query'>, email: string): Promise<void> {
    const [keyed, plain] = this.all(email);
    await em.query(
      `WITH plain AS (DELETE FROM suppressions WHERE recipient_hash = $2 RETURNING reason, created_at)
       INSERT INTO suppressions (recipient_hash, reason, created_at) SELECT $1, reason, created_at FROM plain ON CONFLICT (recipient_hash) DO NOTHING`,
      [keyed, plain],
    );
  }
}
