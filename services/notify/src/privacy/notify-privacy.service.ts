import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { IdentityRpc, type PrivacyErasure, type PrivacyErasureProcessorReport, type PrivacyExport } from '@ally/contracts';
import { forgetSubjectInOutbox, RpcClient } from '@ally/messaging';
import { BrevoMailer } from '../brevo/brevo-mailer.js';

/**
 * notify holds, per user, the delivery log (no addresses once sent). Erasure
 * deletes it; the suppression list keeps only hashes of addresses that
 * objected to mail, which must keep working after an erasure.
 */
@Injectable()
export class NotifyPrivacyService {
  constructor(
    private readonly ds: DataSource,
    private readonly mailer: BrevoMailer,
    private readonly rpc: RpcClient,
  ) {}

  async export(userId: string, scope: string): Promise<PrivacyExport> {
    if (scope !== 'all' && scope !== 'private') return { service: 'notify', categories: {} };
    const deliveries = await this.ds.query(
      `SELECT template, locale, status, attempts, created_at, sent_at FROM deliveries WHERE user_id = $1 ORDER BY created_at`,
      [userId],
    );
    return { service: 'notify', categories: { 'delivery-log': deliveries } };
  }

  async erase(userId: string, scope: string): Promise<PrivacyErasure & PrivacyErasureProcessorReport> {
    if (scope !== 'all') return { service: 'notify', affected: { 'delivery-log': 0 } };
    // The account still exists (identity erases last): its address tells Brevo which logs to delete.
    const { contacts } = await this.rpc.call(IdentityRpc.contacts, { workspace: `private:${userId}` }, { timeoutMs: 5_000 });
    for (const c of contacts) await this.mailer.deleteLogs(c.email);
    const [, deleted] = await this.ds.query(`DELETE FROM deliveries WHERE user_id = $1`, [userId]);
    await forgetSubjectInOutbox(this.ds, userId);
    return { service: 'notify', affected: { 'delivery-log': Number(deleted) }, ...(contacts.length ? { processorsNotified: ['brevo'] } : {}) };
  }
}
