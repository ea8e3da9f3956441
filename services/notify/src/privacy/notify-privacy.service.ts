import { Inject, Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { setTimeout } from 'node:timers/promises';
import type { Logger } from 'pino';
import { v5 as uuidv5 } from 'uuid';
import { CONTROLLER, IdentityRpc, NIL_UUID, pagedExport, ProblemError, type Contact, type ExportList, type PrivacyErasure, type PrivacyErasureProcessorReport, type PrivacyExport } from '@ally/contracts';
import { forgetSubjectInOutbox, RpcClient } from '@ally/messaging';
import { lockSubject } from '@ally/persistence';
import { LOGGER } from '@ally/platform';
import { BrevoMailer } from '../brevo/brevo-mailer.js';
import { AddressHashes } from '../common/address-hash.js';
import { STALE_SENDING } from '../deliveries/delivery-worker.js';
import { MailRenderer } from '../mails/mail-renderer.js';
import { erasureMark } from './erasure-mark.js';

/**
 * The subject's mails ($1 user id, $2 their address hashes): to them, about them, and to their address while it
 * named no account. By address only those: another account's mails to an address it had before are that
 * account's, not its new owner's.
 */
const SUBJECTS_MAILS = `(user_id = $1 OR about_user_id = $1 OR (user_id IS NULL AND recipient_hash = ANY($2::text[])))`;

/** Of those, the ones about a scope ($3): `all`, the account's own (`private`: no organisation), or one organisation's (its invitation, its billing). */
const SUBJECTS_MAILS_IN_SCOPE = `${SUBJECTS_MAILS} AND ($3::text = 'all' OR ($3 = 'private' AND org_id IS NULL) OR org_id::text = $3)`;

/** Brevo answers a send within its 15 s timeout; longer than that here and privacy asks again. */
const SEND_WAIT_MS = 2_000;

/**
 * notify holds, per user, the delivery log (no addresses once sent). Erasure
 * deletes it (of one workspace: that workspace's mails); the suppression list keeps only hashes of addresses that
 * objected to mail, which must keep working after an erasure.
 */
@Injectable()
export class NotifyPrivacyService {
  constructor(
    private readonly ds: DataSource,
    private readonly mailer: BrevoMailer,
    private readonly rpc: RpcClient,
    private readonly renderer: MailRenderer,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly addresses: AddressHashes,
  ) {}

  /**
   * The subject's delivery log: mails tied to them, and those to their address
   * before it had an account (as `erase` finds them); and whether their
   * address is on the suppression list, and why. An export of one
   * workspace holds the mails about it: an organisation's (its invitation, its
   * billing), or the account's own for the private one.
   */
  async export(userId: string, scope: string, page: number | string = 0): Promise<PrivacyExport> {
    // Read by keyset, a page at a time: the log grows by every mail, and no page rebuilds it whole.
    // The address's hashes are asked for (of identity) once per page, whatever number of reads it takes.
    let asked: Promise<string[]> | undefined;
    const hashes = () => (asked ??= this.addressHashes(userId));
    const deliveries: ExportList = {
      category: 'delivery-log',
      read: async (after, limit) => {
        const rows = await this.ds.query(
          `SELECT template, locale, org_id, status, attempts, provider_message_id, created_at, sent_at, created_at::text AS place_at, id::text AS place_id FROM deliveries
            WHERE ${SUBJECTS_MAILS_IN_SCOPE} AND (created_at, id) > ($4::timestamptz, $5::uuid) ORDER BY created_at, id LIMIT $6`,
          [userId, await hashes(), scope, after?.[0] ?? '-infinity', after?.[1] ?? NIL_UUID, limit],
        );
        return rows.map(({ place_at, place_id, ...value }: { place_at: string; place_id: string }) => ({ value, place: [place_at, place_id] }));
      },
    };
    // The suppression list is keyed by the address alone, so it is the account's own: in the private (or whole) export.
    const suppressions = async () => ({
      'suppression-list':
        scope === 'all' || scope === 'private'
          ? await this.ds.query(`SELECT reason, created_at FROM suppressions WHERE recipient_hash = ANY($1::text[]) ORDER BY created_at, recipient_hash`, [await hashes()])
          : [],
    });
    return pagedExport('notify', page, suppressions, [deliveries]);
  }

  private async addressHashes(userId: string): Promise<string[]> {
    const { contacts } = await this.rpc.call(IdentityRpc.contacts, { workspace: `private:${userId}` }, { timeoutMs: 5_000 });
    return this.confirmedAddressHashes(contacts);
  }

  /**
   * Mails to an address tied to no account (before it had one) are the subject's once they confirmed the address:
   * whoever registered an account with someone else's address gets, and erases, only what names the account.
   */
  private confirmedAddressHashes(contacts: Contact[]): string[] {
    return contacts.filter((c) => c.addressConfirmed !== false).flatMap((c) => this.addresses.all(c.email));
  }

  /**
   * Stops mail to the subject first, then has Brevo delete its logs, then
   * deletes the log here. Under the subject's lock a mark goes in, so events
   * still in the stream make no mail; then what waits to be sent goes, and a
   * mail already handed to Brevo is waited for, so its log is deleted too.
   */
  async erase(userId: string, scope: string): Promise<PrivacyErasure & PrivacyErasureProcessorReport> {
    if (scope !== 'all') {
      // One workspace: the mails about it (as its export lists them). Brevo's logs are kept per address, not per
      // workspace: they go with the whole account's erasure.
      const [, deleted] = await this.ds.query(`DELETE FROM deliveries WHERE ${SUBJECTS_MAILS_IN_SCOPE}`, [userId, await this.addressHashes(userId), scope]);
      return { service: 'notify', affected: { 'delivery-log': Number(deleted) } };
    }
    await this.ds.transaction(async (em) => {
      await lockSubject(em, userId, 'exclusive');
      await em.query(`INSERT INTO erased_subjects (mark) VALUES ($1) ON CONFLICT DO NOTHING`, [erasureMark(userId)]);
    });
    // The account still exists (identity erases last): its address tells Brevo which logs to delete.
    const { contacts } = await this.rpc.call(IdentityRpc.contacts, { workspace: `private:${userId}` }, { timeoutMs: 5_000 });
    // Mails to the address before it had an account (an invitation) name no user: their address hash ties them to the
    // subject once the address is confirmed theirs (until then they stay, and go by their retention).
    const hashes = this.confirmedAddressHashes(contacts);
    const unsent = await this.stopSends(userId, hashes);
    await this.sayGoodbye(userId, contacts);
    // Brevo keeps its logs by address, with the account's own mails among them: they go whoever registered it
    // (nobody loses anything by it but a record of what Ally sent).
    for (const c of contacts) await this.mailer.deleteLogs(c.email);
    // Mails to an address the account no longer has (before a change of address, or a change's link to one never
    // confirmed), and to others about the subject (an invitation naming them), are logged under addresses notify
    // does not keep: they go one by one, by the message ids the delivery log still holds.
    const current = contacts.flatMap((c) => this.addresses.all(c.email));
    const elsewhere: { provider_message_id: string }[] = await this.ds.query(
      `SELECT DISTINCT provider_message_id FROM deliveries WHERE (user_id = $1 OR about_user_id = $1) AND provider_message_id LIKE '<%@%>' AND recipient_hash <> ALL($2::text[])`,
      [userId, current],
    );
    for (const { provider_message_id } of elsewhere) await this.mailer.deleteLogs(provider_message_id);
    const [, deleted] = await this.ds.query(`DELETE FROM deliveries WHERE ${SUBJECTS_MAILS}`, [userId, hashes]);
    await this.ds.query(`DELETE FROM restrictions WHERE user_id = $1`, [userId]);
    // The suppression list outlives the account (an objection to mail holds for the address): under the keyed hash,
    // the one later mails are checked against, now that the address is at hand for the last time.
    for (const c of contacts) await this.addresses.upgradeSuppression(this.ds, c.email);
    await forgetSubjectInOutbox(this.ds, userId);
    return { service: 'notify', affected: { 'delivery-log': unsent + Number(deleted) }, ...(contacts.length || elsewhere.length ? { processorsNotified: ['brevo'] } : {}) };
  }

  /**
   * The last mail (Art. 12(3) GDPR: the action taken on their request), sent here because the account is gone
   * by the time the erasure completes; its log goes with the others right after. Once only: the erasure mark
   * records it, and a retry whose first answer was lost sends the same idempotency key, so Brevo mails nobody
   * twice. Brevo away fails the step (privacy tries it again); a refusal (an address Brevo will not take) does
   * not stop the erasure.
   */
  private async sayGoodbye(userId: string, contacts: Contact[]): Promise<void> {
    const mark = erasureMark(userId);
    const [{ sent }] = await this.ds.query(`SELECT EXISTS (SELECT 1 FROM erased_subjects WHERE mark = $1 AND farewell_sent_at IS NOT NULL) AS sent`, [mark]);
    if (sent) return;
    for (const to of contacts) {
      const mail = this.renderer.render('account-erased', to.locale, { firstName: to.firstName, contactEmail: CONTROLLER.email });
      const outcome = await this.mailer.send(to.email, mail, ['account-erased'], farewellKey(userId));
      if (outcome.ok) continue;
      if (outcome.retryable) throw new ProblemError(503, 'Brevo did not take the erasure notice; try the erasure again');
      this.logger.warn({ error: outcome.error }, 'erasure notice refused by Brevo; the erasure goes on');
    }
    await this.ds.query(`UPDATE erased_subjects SET farewell_sent_at = now() WHERE mark = $1`, [mark]);
  }

  /**
   * Deletes the subject's mails that wait (also one a send put back for a
   * retry, one to their address that names no user, and one to someone else
   * about them: an invitation they sent) until none is being sent. FOR UPDATE reads each row as it is now:
   * one the worker is claiming this moment is read after the claim, as
   * `sending`, and waited for. Privacy retries the step if a send outlasts the
   * wait. Answers how many mails it deleted unsent.
   */
  private async stopSends(userId: string, hashes: string[]): Promise<number> {
    const until = Date.now() + SEND_WAIT_MS;
    let unsent = 0;
    for (;;) {
      const sending = await this.ds.transaction(async (em) => {
        const rows: { id: string; sending: boolean }[] = await em.query(
          `SELECT id, status = 'sending' AND updated_at >= now() - ${STALE_SENDING} AS sending
             FROM deliveries WHERE ${SUBJECTS_MAILS} AND status IN ('pending', 'sending') FOR UPDATE`,
          [userId, hashes],
        );
        const waiting = rows.filter((r) => !r.sending).map((r) => r.id);
        if (waiting.length) await em.query(`DELETE FROM deliveries WHERE id = ANY($1::uuid[])`, [waiting]);
        unsent += waiting.length;
        return rows.length - waiting.length;
      });
      if (sending === 0) return unsent;
      if (Date.now() >= until) throw new ProblemError(503, 'A mail to the subject is being sent; try the erasure again');
      await setTimeout(50);
    }
  }
}

/** Names the UUIDs of farewells (RFC 9562 name-based), apart from any other use of the user id. */
const FAREWELL_NAMESPACE = '0b6c5c2e-7a0f-4c55-9d55-2f1f3d6f2a01';

/** The same UUID for every attempt at one subject's farewell (Brevo's idempotency key), naming nobody. */
const farewellKey = (userId: string): string => uuidv5(userId, FAREWELL_NAMESPACE);
