import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import type { PrivacyErasure, PrivacyExport } from '@ally/contracts';

/**
 * notify holds, per user, the delivery log (no addresses once sent). Erasure
 * deletes it; the suppression list keeps only hashes of addresses that
 * objected to mail, which must keep working after an erasure.
 */
@Injectable()
export class NotifyPrivacyService {
  constructor(private readonly ds: DataSource) {}

  async export(userId: string, scope: string): Promise<PrivacyExport> {
    if (scope !== 'all' && scope !== 'private') return { service: 'notify', categories: {} };
    const deliveries = await this.ds.query(
      `SELECT template, locale, status, attempts, created_at, sent_at FROM deliveries WHERE user_id = $1 ORDER BY created_at`,
      [userId],
    );
    return { service: 'notify', categories: { 'delivery-log': deliveries } };
  }

  async erase(userId: string, scope: string): Promise<PrivacyErasure> {
    if (scope !== 'all') return { service: 'notify', affected: { 'delivery-log': 0 } };
    const [, deleted] = await this.ds.query(`DELETE FROM deliveries WHERE user_id = $1`, [userId]);
    // Events already published that name the subject: the stream keeps them at most 7 days, our copy goes now.
    await this.ds.query(`DELETE FROM outbox WHERE sent_at IS NOT NULL AND payload::text LIKE '%' || $1 || '%'`, [userId]);
    return { service: 'notify', affected: { 'delivery-log': Number(deleted) } };
  }
}
