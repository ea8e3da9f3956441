import { Inject, Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { gzipSync } from 'node:zlib';
import type { PrivacyExport } from '@ally/contracts';
import { forgetSubjectInOutbox } from '@ally/messaging';
import { AuditTrail } from '../audit/audit-trail.service.js';
import { PackageCipher } from '../common/package-cipher.js';
import { PrivacyOutbox } from '../common/privacy-outbox.js';
import { lockSubjectRequests } from '../common/subject-requests-lock.js';
import { PRIVACY_CONFIG, type PrivacyConfig } from '../config.js';
import { buildPackageFiles } from '../exports/export-package.builder.js';
import { RetentionPoliciesService } from '../retention/retention-policies.service.js';
import type { RequestRow } from '../requests/requests.repository.js';

const DAY_MS = 86_400_000;

interface AccountLike {
  email?: string;
  first_name?: string;
  firstName?: string;
  locale?: string;
}

/** The last move of a saga, once every step is done: runs in the transaction that holds the request's row lock. */
@Injectable()
export class RequestFinalizer {
  constructor(
    private readonly cipher: PackageCipher,
    private readonly audit: AuditTrail,
    private readonly outbox: PrivacyOutbox,
    private readonly policies: RetentionPoliciesService,
    @Inject(PRIVACY_CONFIG) private readonly config: PrivacyConfig,
  ) {}

  async finalize(em: EntityManager, req: RequestRow): Promise<void> {
    // Under the request's row lock: an erasure that committed since it was found ready may have sent its steps back.
    const [unfinished] = await em.query(`SELECT 1 FROM request_steps WHERE request_id = $1 AND status <> 'completed' LIMIT 1`, [req.id]);
    if (unfinished) return;
    switch (req.type) {
      case 'access':
      case 'portability':
        return this.packageExport(em, req);
      case 'erasure':
        return this.completeErasure(em, req);
      default:
        return this.complete(em, req, {});
    }
  }

  /** Joins the services' parts into one package, encrypted under the request's key, and tells notify it is ready. */
  private async packageExport(em: EntityManager, req: RequestRow): Promise<void> {
    if (!req.wrapped_key || !req.user_id) return this.fail(em, req, 'the export key is gone');
    // Checked before anything is read into memory: a package too large to build would fail every attempt (and
    // could take the process down with it).
    const [{ bytes }] = await em.query(`SELECT coalesce(sum(octet_length(sealed)), 0)::bigint AS bytes FROM export_parts WHERE request_id = $1`, [req.id]);
    if (Number(bytes) > this.config.PRIVACY_EXPORT_MAX_BYTES) {
      return this.fail(em, req, `the collected data (${Number(bytes)} bytes) is more than one package holds (PRIVACY_EXPORT_MAX_BYTES ${this.config.PRIVACY_EXPORT_MAX_BYTES}): compliance hands it over another way`);
    }
    const parts: { service: string; sealed: Buffer }[] = await em.query(`SELECT service, sealed FROM export_parts WHERE request_id = $1 ORDER BY service`, [req.id]);
    const sections: PrivacyExport[] = parts.map((p) => JSON.parse(this.cipher.open(req.wrapped_key!, req.id, p.sealed, `part:${p.service}`).toString('utf8')));
    const completedAt = new Date();
    const policies = await this.policies.list();
    // A period compliance set for export packages shorter than the configured one is the download time too.
    const packageDays = policies.find((p) => p.service === 'privacy' && p.category === 'export-packages')?.retentionDays;
    const ttlDays = Math.min(this.config.PRIVACY_EXPORT_TTL_DAYS, packageDays ?? Infinity);
    const downloadUntil = new Date(completedAt.getTime() + ttlDays * DAY_MS);
    const files = buildPackageFiles({
      requestId: req.id,
      type: req.type as 'access' | 'portability',
      scope: req.scope,
      receivedAt: new Date(req.created_at).toISOString(),
      completedAt: completedAt.toISOString(),
      downloadUntil: downloadUntil.toISOString(),
      sections,
      privacySection: await this.ownSection(em, req.user_id, req.scope),
      policies,
    });
    const plain = gzipSync(Buffer.from(JSON.stringify({ createdAt: completedAt.toISOString(), files }), 'utf8'));
    const sealed = this.cipher.seal(req.wrapped_key, req.id, plain, 'package');
    await em.query(`INSERT INTO export_packages (request_id, user_id, sealed, size, expires_at) VALUES ($1, $2, $3, $4, $5)`, [req.id, req.user_id, sealed, plain.length, downloadUntil]);
    await em.query(`DELETE FROM export_parts WHERE request_id = $1`, [req.id]);
    await em.query(`UPDATE requests SET download_until = $2 WHERE id = $1`, [req.id, downloadUntil]);
    const account = (sections.find((s) => s.service === 'identity')?.categories.account ?? null) as AccountLike | null;
    await this.outbox.append(
      em,
      'privacy.export.ready',
      {
        requestId: req.id,
        userId: req.user_id,
        email: account?.email ?? null,
        firstName: account?.first_name ?? account?.firstName ?? null,
        locale: account?.locale === 'en' ? 'en' : 'de',
        downloadUntil: downloadUntil.toISOString(),
        // The page that signs in and fetches the package (the API's route needs a bearer token a mail link cannot carry).
        downloadPath: `/privacy/requests/${req.id}/download`,
      },
      { subject: { userId: req.user_id } },
    );
    await this.complete(em, req, { files: Object.keys(files).length, bytes: plain.length, downloadUntil: downloadUntil.toISOString() });
  }

  /**
   * Every service confirmed. For the whole account: a tombstone (salted hash,
   * counts) proves the erasure; privacy's own copies go (export packages and
   * their keys, the user id on past requests, released holds, sent events).
   */
  private async completeErasure(em: EntityManager, req: RequestRow): Promise<void> {
    const steps: { service: string; result: Record<string, number> | null; attempts: number }[] = await em.query(
      `SELECT service, result, attempts FROM request_steps WHERE request_id = $1 ORDER BY service`,
      [req.id],
    );
    // A step tried again counts only what its last attempt found: an earlier one whose answer was lost may have
    // erased it all. The tombstone says how many attempts its counts come from.
    const affected: Record<string, Record<string, number>> = Object.fromEntries(
      steps.map((s) => [s.service, { ...(s.result ?? {}), ...(s.attempts > 1 ? { attempts: s.attempts } : {}) }]),
    );
    const userId = req.user_id;
    if (userId) {
      // Decisions and new requests of the subject wait for this (or came before it, and are seen below).
      await lockSubjectRequests(em, userId);
      // So does an export being finished right now on another replica: seen finished below (and voided), or
      // finished after this, with its steps sent back (it re-checks them under this lock).
      await em.query(`SELECT id FROM requests WHERE user_id = $1 AND type IN ('access', 'portability') AND id <> $2 ORDER BY id FOR UPDATE`, [userId, req.id]);
    }
    // An erasure that found nothing (a workspace the subject never used) changes no export; one whose counts may
    // have been lost with an earlier attempt's answer is taken to have erased something.
    const erasedAny = steps.some((s) => s.attempts > 1 || Object.values(s.result ?? {}).some((n) => Number(n) > 0));
    if (userId && erasedAny) {
      // Exports whose scope overlaps the erased one (`all` overlaps every scope) may hold what was erased:
      // finished packages are voided with their keys; an export still being collected throws away the
      // parts it has and collects them again, now without what was erased, also a part being read right
      // now (its step back to pending: the worker holding it can no longer complete it). Other scopes' exports stand.
      const overlapping = `user_id = $1 AND type IN ('access', 'portability') AND id <> $2 AND ($3 = 'all' OR scope = 'all' OR scope = $3)`;
      const [, packages] = await em.query(
        `DELETE FROM export_packages WHERE request_id IN (SELECT id FROM requests WHERE ${overlapping} AND status = 'completed')`,
        [userId, req.id, req.scope],
      );
      // (A failed export kept nothing: `fail` took its parts and key.)
      await em.query(`UPDATE requests SET wrapped_key = NULL, download_until = NULL WHERE ${overlapping} AND status = 'completed'`, [userId, req.id, req.scope]);
      const collecting: { id: string }[] = await em.query(`SELECT id FROM requests WHERE ${overlapping} AND status IN ('received', 'in_progress')`, [userId, req.id, req.scope]);
      for (const { id } of collecting) {
        await em.query(`DELETE FROM export_parts WHERE request_id = $1`, [id]);
        await em.query(`UPDATE request_steps SET status = 'pending', completed_at = NULL, result = NULL, lease_until = NULL, next_attempt_at = now() WHERE request_id = $1 AND status IN ('completed', 'running')`, [id]);
      }
      affected.privacy = { 'export-packages': Number(packages ?? 0) };
    }
    if (userId && req.scope === 'all') {
      await em.query(`INSERT INTO tombstones (subject_hash, request_id, scope, affected) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, [req.subject_hash, req.id, req.scope, JSON.stringify(affected)]);
      await em.query(`UPDATE legal_holds SET user_id = NULL WHERE user_id = $1 AND released_at IS NOT NULL`, [userId]);
      // Events not yet out about them (a decision's mail, an export's link) have no one left to reach.
      await forgetSubjectInOutbox(em, userId, { unpublished: 'drop' });
      // The subject's other open requests cannot go on without them: they end, said why (and audited).
      const open: RequestRow[] = await em.query(`SELECT * FROM requests WHERE user_id = $1 AND id <> $2 AND status IN ('received', 'in_progress')`, [userId, req.id]);
      for (const other of open) {
        await em.query(`UPDATE request_steps SET status = 'failed', lease_until = NULL, last_error = 'subject erased' WHERE request_id = $1 AND status IN ('pending', 'running')`, [other.id]);
        await this.fail(em, other, `The subject was erased (request ${req.id}) before this request was done`);
      }
      // Compliance's words to the subject go with them; the audit trail keeps its own record.
      await em.query(`UPDATE requests SET user_id = NULL, decision_reason = CASE WHEN decision_reason IS NOT NULL THEN '' END, updated_at = now() WHERE user_id = $1`, [userId]);
    } else if (userId) {
      // The account stays: its owner is told the workspace's data is gone (the whole account's farewell is notify's step).
      const completedAt = new Date().toISOString();
      await this.outbox.append(em, 'privacy.erasure.completed', { requestId: req.id, userId, scope: req.scope, completedAt }, { subject: { userId } });
    }
    await this.complete(em, req, { affected });
  }

  private async complete(em: EntityManager, req: RequestRow, details: Record<string, unknown>): Promise<void> {
    await em.query(`UPDATE requests SET status = 'completed', completed_at = now(), updated_at = now(), failure = NULL WHERE id = $1`, [req.id]);
    await this.audit.append(em, { actor: 'system', action: 'request.completed', requestId: req.id, subjectHash: req.subject_hash, details: { type: req.type, scope: req.scope, ...details } });
  }

  /**
   * Ends a request that is still open as failed, once (another step giving up later changes nothing), and
   * tells compliance. A failed export keeps none of what it collected: its parts and its key go.
   */
  async fail(em: EntityManager, req: Pick<RequestRow, 'id' | 'subject_hash' | 'type' | 'due_at'>, reason: string): Promise<void> {
    const [, failed] = await em.query(
      `UPDATE requests SET status = 'failed', failure = $2, updated_at = now(), escalated_at = coalesce(escalated_at, now()),
              wrapped_key = CASE WHEN type IN ('access', 'portability') THEN NULL ELSE wrapped_key END
        WHERE id = $1 AND status IN ('received', 'in_progress')`,
      [req.id, reason.slice(0, 500)],
    );
    if (!failed) return;
    await em.query(`DELETE FROM export_parts WHERE request_id = $1`, [req.id]);
    await this.audit.append(em, { actor: 'system', action: 'request.failed', requestId: req.id, subjectHash: req.subject_hash, details: { reason: reason.slice(0, 500) } });
    await this.outbox.append(em, 'privacy.request.escalated', { requestId: req.id, type: req.type, status: 'failed', dueAt: new Date(req.due_at).toISOString(), reason: 'failed' });
  }

  /**
   * privacy's own records about the subject: their requests (not legal holds, which may concern legal claims),
   * those the export's scope takes in: those about that
   * workspace and those about the whole account. A private one's do not show
   * in an organisation's export, nor an organisation's in a private one.
   */
  private async ownSection(em: EntityManager, userId: string, scope: string): Promise<PrivacyExport> {
    const requests = await em.query(
      `SELECT id, type, scope, status, created_at, due_at, completed_at, decision, decision_reason, decided_at, takes_effect_at, took_effect_at FROM requests
        WHERE user_id = $1 AND ($2::text = 'all' OR scope IN ('all', $2)) ORDER BY created_at`,
      [userId, scope],
    );
    // As JSON, like the other services' sections (a Date would read as an object to the package's schema).
    return { service: 'privacy', categories: { 'data-subject-requests': JSON.parse(JSON.stringify(requests)) } };
  }
}
