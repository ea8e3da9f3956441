import { Inject, Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { z } from 'zod';
import { emailSchema, parseInput, plainText, ProblemError } from '@ally/contracts';
import { sameSecret } from '@ally/platform';
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
const batchSchema = z.array(brevoEvent).max(1000);


@Injectable()
export class BrevoWebhookService {
  constructor(
    private readonly ds: DataSource,
    @Inject(NOTIFY_CONFIG) private readonly config: NotifyConfig,
    private readonly addresses: AddressHashes,
  ) {}

  /** Bounces, complaints and unsubscribes put the address (as a hash) on the suppression list. */
  async apply(secret: string, payload: unknown): Promise<{ applied: number }> {
    this.authenticate(secret);
    const events = Array.isArray(payload) ? parseInput(batchSchema, payload, 'Brevo webhook event') : [parseInput(brevoEvent, payload, 'Brevo webhook event')];
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
    return { applied };
  }

  private authenticate(secret: string): void {
    const expected = this.config.BREVO_WEBHOOK_SECRET;
    if (!expected || !sameSecret(secret, expected)) {
      throw new ProblemError(401, 'The webhook secret is missing or wrong');
    }
  }
}
