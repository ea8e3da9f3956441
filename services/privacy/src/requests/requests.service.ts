import { Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { v7 as uuidv7 } from 'uuid';
import { limitReached, ProblemError, type Actor, type Page, type PrivacyRequestStatus, type PrivacyRequestType, type PrivacyRequestView } from '@ally/contracts';
import { AuditTrail } from '../audit/audit-trail.service.js';
import { PackageCipher } from '../common/package-cipher.js';
import { PrivacyRequestNotFound, RequestAlreadyOpen } from '../common/privacy-errors.js';
import { PrivacyOutbox } from '../common/privacy-outbox.js';
import { erasureFinished, lockSubjectRequests } from '../common/subject-requests-lock.js';
import { SubjectHasher } from '../common/subject-hash.js';
import { lockHeldSet } from '../legal-holds/held-set-lock.js';
import { objectedCategories, planSteps } from './request-plan.js';
import { RequestsRepository } from './requests.repository.js';

/** Files data-subject requests and shows them to their subject (and to compliance). The saga worker does the rest. */

/** How soon after an export of a kind and scope the next may be asked for, while its package is there. */
const EXPORT_INTERVAL_MS = 24 * 3600_000;
@Injectable()
export class RequestsService {
  constructor(
    private readonly ds: DataSource,
    private readonly repo: RequestsRepository,
    private readonly audit: AuditTrail,
    private readonly hasher: SubjectHasher,
    private readonly cipher: PackageCipher,
    private readonly outbox: PrivacyOutbox,
  ) {}

  async create(actor: Actor, input: { type: Exclude<PrivacyRequestType, 'rectification'>; scope: string }): Promise<PrivacyRequestView> {
    const id = uuidv7();
    const subjectHash = this.hasher.hash(actor.userId);
    const steps = planSteps(input.type, undefined, input.scope);
    await this.ds.transaction(async (em) => {
      // One open request per kind and scope: a second click does not start a second saga.
      await lockSubjectRequests(em, actor.userId);
      // Let through by the gateway just before the account's erasure finished: nobody is left to answer.
      if (await erasureFinished(em, subjectHash)) throw new ProblemError(410, 'This account was erased');
      const erasing = await this.repo.openErasureOfAccount(em, actor.userId);
      if (erasing) throw new ProblemError(409, `Your account is being erased (request ${erasing}); no other request can be taken until that is done`);
      const open = await this.repo.openOfSameKind(em, actor.userId, input.type, input.scope);
      if (open) throw new RequestAlreadyOpen(open);
      const exporting = input.type === 'access' || input.type === 'portability';
      if (exporting) {
        // Every export has every service read all of the subject's data: one a day per kind and scope (Art. 12(5) GDPR:
        // requests excessive by their repetition), while the last one's package is there to download.
        const recent = await this.repo.recentExport(em, actor.userId, input.type, input.scope, new Date(Date.now() - EXPORT_INTERVAL_MS));
        if (recent) {
          const again = new Date(recent.completedAt.getTime() + EXPORT_INTERVAL_MS).toISOString();
          throw limitReached(`Your ${input.type} export of this scope from ${recent.completedAt.toISOString()} is ready to download (request ${recent.id}); a new one can be asked for from ${again}`);
        }
      }
      const details: Record<string, unknown> = {};
      // A restriction spares the subject from retention from now on, also in a run under way.
      if (input.type === 'restriction') await lockHeldSet(em, 'exclusive');
      if (input.type === 'restriction' || input.type === 'objection') {
        // Services learn of it through the outbox; each step completes once its service acted on the event.
        const event =
          input.type === 'restriction'
            ? await this.outbox.append(em, 'privacy.subject.restricted', { requestId: id, userId: actor.userId, scope: input.scope }, { subject: { userId: actor.userId } })
            : await this.outbox.append(
                em,
                'privacy.subject.objected',
                { requestId: id, userId: actor.userId, scope: input.scope, categories: objectedCategories() },
                { subject: { userId: actor.userId } },
              );
        details.eventId = event.id;
      }
      await this.repo.insert(em, { id, userId: actor.userId, subjectHash, type: input.type, scope: input.scope, wrappedKey: exporting ? this.cipher.newWrappedKey(id) : null, details }, steps);
      await this.audit.append(em, {
        actor: `subject:${subjectHash}`,
        action: 'request.received',
        requestId: id,
        subjectHash,
        details: { type: input.type, scope: input.scope, steps: steps.map((s) => `${s.service}:${s.action}`) },
      });
    });
    return (await this.repo.view(id))!;
  }

  listOwn(actor: Actor, limit: number, cursor?: string): Promise<Page<PrivacyRequestView>> {
    return this.repo.listForUser(actor.userId, limit, cursor);
  }

  /** A user sees only their own requests: anyone else's is "not found". */
  async getOwn(actor: Actor, id: string): Promise<PrivacyRequestView> {
    const row = await this.repo.find(id);
    if (!row || row.user_id !== actor.userId) throw new PrivacyRequestNotFound();
    return (await this.repo.views([row]))[0];
  }

  listAll(filter: { status?: PrivacyRequestStatus; awaiting?: 'decision' }, limit: number, cursor?: string): Promise<Page<PrivacyRequestView>> {
    return this.repo.listAll(filter, limit, cursor);
  }

  /**
   * Rectification happens in identity; privacy records it as a request that
   * is already done. No processor holds a copy of the fields it changes (name,
   * language) to pass the change on to (Art. 19): Ally gives Stripe no name
   * (Checkout asks the customer), and Brevo keeps no contact, only the logs
   * of mails as they were sent.
   */
  async recordRectification(em: EntityManager, userId: string, changed: string[], eventId: string): Promise<void> {
    const id = uuidv7();
    const subjectHash = this.hasher.hash(userId);
    // A change that reaches us after the subject's erasure concerns no one any more: recording it would bring the id
    // back. Asked under the subject's request lock, which an erasure finishing holds: its tombstone is seen, or this
    // row is, and loses the id with the others.
    await lockSubjectRequests(em, userId);
    if (await erasureFinished(em, subjectHash)) return;
    await this.repo.insert(em, { id, userId, subjectHash, type: 'rectification', scope: 'all', wrappedKey: null, status: 'completed', details: { changed, eventId } }, []);
    await this.audit.append(em, { actor: `subject:${subjectHash}`, action: 'rectification.recorded', requestId: id, subjectHash, details: { changed } });
  }
}
