import { Inject, Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { z } from 'zod';
import { emailSchema, parseInput, plainText, ProblemError } from '@ally/contracts';
import { LOGGER, sameSecret } from '@ally/platform';
import type { Logger } from 'pino';
import { AddressHashes } from '../common/address-hash.js';
import { NOTIFY_CONFIG, type NotifyConfig } from '../config.js';

/** Brevo's transactional webhook events we act on; others are acknowledged and ignored. */
const SUPPRESSING = new Set(['hard_bounce', 'spam', 'unsubscribed', 'blocked', 'invalid_email']);
// A soft bounce is temporary (Brevo retries), so it neither suppresses nor ends the delivery: a later
// `delivered` still applies. Only a delivery still `sent` changes, so a hard bounce stays final.
// A Map: an event named after an object's own properties ("constructor", "__proto__") is no status.
const STATUS = new Map<string, 'delivered' | 'bounced'>([
  ['delivered', 'delivered'],
  ['hard_bounce', 'bounced'],
]);

// plainText refuses what Postgres cannot store (a NUL character): such a value is malformed, not a 500.
const brevoEvent = z.looseObject({
  event: plainText(100).min(1),
  // Only an address we could have sent to: anything else is no event about our mail.
  email: emailSchema,
  'message-id': plainText(512).optional(),
});
// One event, or a batch of them; chosen by shape first, so a bad field is named (a union would only say "Invalid input").
const batchSchema = z.array(z.unknown()).max(1000);

@Injectable()
export class BrevoWebhookService {
  constructor(
    private readonly ds: DataSource,
    @Inject(NOTIFY_CONFIG) private readonly config: NotifyConfig,
    private readonly addresses: AddressHashes,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /**
   * Bounces, complaints and unsubscribes put the address (as a hash) on the suppression list. A malformed event
   * alone is a 400 naming its field; in a batch it is skipped and the others applied: Brevo drops a whole batch it
   * got a 4xx for (it retries only timeouts and 429s), and a complaint in it would be lost.
   */
  async apply(secret: string, payload: unknown): Promise<{ applied: number; skipped: number }> {
    this.authenticate(secret);
    const events = Array.isArray(payload) ? this.wellFormed(parseInput(batchSchema, payload, 'Brevo webhook events')) : [parseInput(brevoEvent, payload, 'Brevo webhook event')];
    const skipped = Array.isArray(payload) ? payload.length - events.length : 0;
    let applied = 0;
    await this.ds.transaction(async (em) => {
      for (const e of events) {
        if (SUPPRESSING.has(e.event)) {
          await this.addresses.upgradeSuppression(em, e.email);
          await em.query(`INSERT INTO suppressions (recipient_hash, reason) VALUES ($1, $2) ON CONFLICT (recipient_hash) DO NOTHING`, [this.addresses.of(e.email), e.event]);
          applied++;
        }
        const status = STATUS.get(e.event);
        if (status && e['message-id']) {
          await em.query(`UPDATE deliveries SET status = $2, updated_at = now() WHERE provider_message_id = $1 AND status = 'sent'`, [e['message-id'], status]);
        }
      }
    });
    return { applied, skipped };
  }

  /** The events of a batch that are well formed; the others are logged by position and field, without their content. */
  private wellFormed(batch: unknown[]): z.infer<typeof brevoEvent>[] {
    return batch.flatMap((event, index) => {
      const parsed = brevoEvent.safeParse(event);
      if (parsed.success) return [parsed.data];
      this.logger.warn({ index, fields: parsed.error.issues.map((i) => i.path.join('.')) }, 'a malformed event in a Brevo webhook batch was skipped');
      return [];
    });
  }

  private authenticate(secret: string): void {
    const expected = this.config.BREVO_WEBHOOK_SECRET;
    if (!expected || !sameSecret(secret, expected)) {
      throw new ProblemError(401, 'The webhook secret is missing or wrong');
    }
  }
}
