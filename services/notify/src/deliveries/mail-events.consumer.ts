import { Inject, Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { randomUUID } from 'node:crypto';
import { IdentityRpc, type EventEnvelope } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { lockNamed } from '@ally/persistence';
import { EventConsumers, LOGGER } from '@ally/platform';
import type { Logger } from 'pino';
import { Counter, Registry } from 'prom-client';
import { AddressHashes } from '../common/address-hash.js';
import { NOTIFY_CONFIG, type NotifyConfig } from '../config.js';
import { MAIL_CATALOG, MAIL_EVENT_TYPES, type MailContext } from '../mails/mail-catalog.js';
import { isErasedSubject } from '../privacy/erasure-mark.js';
import { isRestricted } from '../privacy/restrictions.consumer.js';
import { DeliveryWorker } from './delivery-worker.js';

/**
 * Turns events into deliveries. The inbox (in EventConsumer) and the unique
 * (event, template) pair make a redelivered event produce no second mail; the
 * worker sends what this writes.
 */
@Injectable()
export class MailEventsConsumer {
  private readonly ctx: MailContext;

  private readonly maxPerHour: number;
  private readonly capped: Counter;

  constructor(
    consumers: EventConsumers,
    worker: DeliveryWorker,
    rpc: RpcClient,
    @Inject(NOTIFY_CONFIG) config: NotifyConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    registry: Registry,
    private readonly addresses: AddressHashes,
  ) {
    this.maxPerHour = config.NOTIFY_MAX_PER_ADDRESS_PER_HOUR;
    this.capped = new Counter({ name: 'ally_notify_mails_capped_total', help: 'Mails not sent because their address had the most an hour allows', labelNames: ['template'], registers: [registry] });
    this.ctx = {
      contacts: (workspace) => rpc.call(IdentityRpc.contacts, { workspace }, { timeoutMs: 5_000 }),
      complianceEmail: config.COMPLIANCE_EMAIL,
    };
    // One consumer per service whose events make mail: before NATS 2.10 a consumer has a single filter, and one over
    // identity's, billing's and privacy's events would be `ally.evt.>`, fetching every usage event chat writes.
    // They share notify-mail's inbox (it read all three before): a new one reading the stream from its start
    // handles nothing notify-mail already did.
    const families = [
      { durable: 'notify-mail', family: 'identity' },
      { durable: 'notify-mail-billing', family: 'billing' },
      { durable: 'notify-mail-privacy', family: 'privacy' },
    ];
    const unread = MAIL_EVENT_TYPES.filter((t) => !families.some((f) => t.startsWith(`${f.family}.`)));
    if (unread.length) throw new Error(`no mail consumer reads ${unread.join(', ')}`);
    for (const { durable, family } of families) {
      consumers.register({
        durable,
        inbox: 'notify-mail',
        types: MAIL_EVENT_TYPES.filter((t) => t.startsWith(`${family}.`)),
        handler: (em, event) => this.handle(em, event),
        // The worker polls anyway; this saves the wait (deliveries are claimed only once committed).
        afterCommit: () => worker.wake(),
      });
    }
  }

  async handle(em: EntityManager, event: EventEnvelope): Promise<void> {
    const found = await MAIL_CATALOG[event.type]?.(event, this.ctx);
    const specs = Array.isArray(found) ? found : found ? [found] : [];
    // Whom the event is about besides its recipients (an invitation names its inviter).
    const about = event.subject?.userId ?? null;
    // An event about a subject erased since it was published mails nobody: not them, nor anyone about them.
    if (specs.length && about && (await isErasedSubject(em, about))) return;
    for (const spec of specs) {
      // A recipient erased since (asked once: the event's subject is most often its recipient, and was asked above).
      if (spec.userId && spec.userId !== about && (await isErasedSubject(em, spec.userId))) continue;
      // A restriction of processing (Art. 18) stops the mails the subject may do without; required ones still go.
      if (spec.userId && !spec.required && (await isRestricted(em, spec.userId, spec.orgId))) {
        this.logger.info({ template: spec.template, eventId: event.id }, 'mail not sent: the recipient restricted, or objected to, the processing of their data');
        continue;
      }
      const recipientHash = this.addresses.of(spec.to);
      await this.addresses.upgradeSuppression(em, spec.to);
      if (!spec.uncapped && (await this.overCap(em, recipientHash, spec.template))) {
        this.capped.inc({ template: spec.template });
        this.logger.warn({ template: spec.template, eventId: event.id }, 'mail not sent: the address already had the most mails an hour allows');
        continue;
      }
      await em.query(
        `INSERT INTO deliveries (id, event_id, template, locale, user_id, org_id, recipient, recipient_hash, variables, required, about_user_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (event_id, template, recipient_hash) DO NOTHING`,
        [randomUUID(), event.id, spec.template, spec.locale, spec.userId, spec.orgId ?? null, spec.to, recipientHash, JSON.stringify(spec.variables), spec.required ?? false, about !== spec.userId ? about : null],
      );
    }
  }

  /**
   * Whether the address already had the most mails of this kind an hour allows. Counted per kind: mails anyone
   * can make come for an address (reset requests, changes of address naming it) must not use up the hour of the
   * others (a settings notice, the owner's own reset link).
   */
  private async overCap(em: EntityManager, recipientHash: string, template: string): Promise<boolean> {
    // Serialised per address, so the count holds against a parallel event for the same inbox.
    await lockNamed(em, `notify-recipient:${recipientHash}`);
    const [{ recent }] = await em.query(`SELECT count(*)::int AS recent FROM deliveries WHERE recipient_hash = $1 AND template = $2 AND created_at > now() - interval '1 hour'`, [recipientHash, template]);
    return recent >= this.maxPerHour;
  }
}
