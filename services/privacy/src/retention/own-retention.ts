import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { findCategory } from '@ally/contracts';
import { deleteInBatches } from '@ally/persistence';
import { AuditTrail, purgeAuditTrail } from '../audit/audit-trail.service.js';
import { releasedHoldsPast, requestsPast } from './own-rules.js';

const BATCH = 1000;
/** How long a consent holds, as the privacy policy says (two years), in the days of the category's default. */
const CONSENT_DAYS = findCategory('privacy', 'consent-records')!.retentionDays!;

/**
 * privacy's own categories in a retention run, purged like every service
 * purges its own: in small batches (SKIP LOCKED, no long locks), never rows
 * of a held user, counting only in a dry run.
 */
@Injectable()
export class OwnRetention {
  constructor(
    private readonly ds: DataSource,
    private readonly trail: AuditTrail,
  ) {}

  /**
   * `alongWith`: privacy's categories of the same run, purged before this one in a real run. No batch is started
   * after `stopBy` (ms): the caller asks again while `complete` is false, so a backlog never holds the held set's
   * lock (which a new legal hold or restriction waits for) longer than a slice.
   */
  async purge(
    category: string,
    days: number | null,
    held: string[],
    dryRun: boolean,
    alongWith: { category: string; retentionDays: number | null }[] = [],
    stopBy = Infinity,
  ): Promise<{ affected: number; complete: boolean }> {
    if (days === null) return { affected: 0, complete: true };
    switch (category) {
      case 'export-packages':
        // Never before the download date the subject was given (the housekeeping then takes package and key together).
        return this.run('export_packages', 'request_id', `created_at < now() - make_interval(days => $1) AND expires_at <= now() AND NOT (user_id = ANY($2::uuid[]))`, [days, held], dryRun, stopBy);
      case 'consent-records':
        // Never the proof of a consent still valid for its two years (from a 29 February they are 731 days), unless
        // compliance shortened the period: then a consent lasts only that long, and with its record it lapses (asked again).
        return this.run('consents', 'id', `recorded_at < now() - make_interval(days => $1) AND (expires_at <= now() OR $1 < $2)`, [days, CONSENT_DAYS], dryRun, stopBy);
      case 'legal-holds':
        return this.run('legal_holds', 'id', releasedHoldsPast('$1'), [days], dryRun, stopBy);
      case 'data-subject-requests':
        return this.run('requests', 'id', requestsPast('$1', '$2'), [days, held], dryRun, stopBy);
      case 'erasure-tombstones':
        // The subject is gone, so a hold placed since can only name their hash.
        return this.run(
          'tombstones',
          'ctid',
          `erased_at < now() - make_interval(days => $1) AND NOT EXISTS (SELECT 1 FROM legal_holds h WHERE h.released_at IS NULL AND h.subject_hash = tombstones.subject_hash)`,
          [days],
          dryRun,
          stopBy,
        );
      case 'audit-trail': {
        // A dry run deletes nothing before it: it counts as gone what the run's earlier categories would delete.
        const before = (name: string) => (dryRun ? (alongWith.find((c) => c.category === name)?.retentionDays ?? null) : null);
        return purgeAuditTrail(this.ds, this.trail, days, held, dryRun, BATCH, { requestsDays: before('data-subject-requests'), holdsDays: before('legal-holds') }, stopBy);
      }
      default:
        return { affected: 0, complete: true };
    }
  }

  private run(table: string, key: string, where: string, params: unknown[], dryRun: boolean, stopBy: number): Promise<{ affected: number; complete: boolean }> {
    return deleteInBatches(this.ds, { table, key, where, params, batch: BATCH, stopBy, dryRun });
  }
}
