import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { purgeAuditTrail } from '../audit/audit-trail.service.js';

const BATCH = 1000;

/**
 * privacy's own categories in a retention run, purged like every service
 * purges its own: in small batches (SKIP LOCKED, no long locks), never rows
 * of a held user, counting only in a dry run.
 */
@Injectable()
export class OwnRetention {
  constructor(private readonly ds: DataSource) {}

  async purge(category: string, days: number | null, held: string[], dryRun: boolean): Promise<number> {
    if (days === null) return 0;
    switch (category) {
      case 'export-packages':
        return this.run('export_packages', 'request_id', `created_at < now() - make_interval(days => $1) AND NOT (user_id = ANY($2::uuid[]))`, [days, held], dryRun);
      case 'consent-records':
        // Never the proof of a consent still valid (two years from a 29 February are 731 days).
        return this.run('consents', 'id', `recorded_at < now() - make_interval(days => $1) AND expires_at <= now()`, [days], dryRun);
      case 'legal-holds':
        // Only released holds, counted from their release: an active one is what keeps the held user's data.
        return this.run('legal_holds', 'id', `released_at IS NOT NULL AND released_at < now() - make_interval(days => $1)`, [days], dryRun);
      case 'data-subject-requests':
        return this.run(
          'requests',
          'id',
          `status IN ('completed', 'failed') AND coalesce(completed_at, updated_at) < now() - make_interval(days => $1) AND (user_id IS NULL OR NOT (user_id = ANY($2::uuid[])))`,
          [days, held],
          dryRun,
        );
      case 'erasure-tombstones':
        // The subject is gone, so a hold placed since can only name their hash.
        return this.run(
          'tombstones',
          'ctid',
          `erased_at < now() - make_interval(days => $1) AND NOT EXISTS (SELECT 1 FROM legal_holds h WHERE h.released_at IS NULL AND h.subject_hash = tombstones.subject_hash)`,
          [days],
          dryRun,
        );
      case 'audit-trail':
        return purgeAuditTrail(this.ds, days, held, dryRun, BATCH);
      default:
        return 0;
    }
  }

  private async run(table: string, key: string, where: string, params: unknown[], dryRun: boolean): Promise<number> {
    if (dryRun) {
      const [{ n }] = await this.ds.query(`SELECT count(*)::int AS n FROM ${table} WHERE ${where}`, params);
      return n;
    }
    let total = 0;
    for (;;) {
      const [, affected] = await this.ds.query(`DELETE FROM ${table} WHERE ${key} IN (SELECT ${key} FROM ${table} WHERE ${where} LIMIT ${BATCH} FOR UPDATE SKIP LOCKED)`, params);
      total += Number(affected ?? 0);
      if (!affected || affected < BATCH) return total;
    }
  }
}
