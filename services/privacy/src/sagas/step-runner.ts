import { Inject, Injectable } from '@nestjs/common';
import { categoriesOf, mergeExportPages, privacyRpcs, processorsOf, type PrivacyErasure, type PrivacyErasureProcessorReport, type PrivacyExport } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { PRIVACY_CONFIG, type PrivacyConfig } from '../config.js';

export interface ClaimedStep {
  requestId: string;
  service: string;
  action: 'export' | 'erase' | 'notify';
  attempts: number;
  /** null: a restriction's or objection's subject erased since (its step asks about the event only). */
  userId: string | null;
  scope: string;
  /** A restriction's or objection's event, which the service acts on by itself (`notify` steps). */
  event?: { id: string; type: 'privacy.subject.restricted' | 'privacy.subject.objected' };
  /** What earlier attempts' slices of this erasure step deleted, kept with the step. */
  progress?: ErasureProgress | null;
  /** An export's parts other services already sent (sealed bytes): the package's limit is the request's, not each part's. */
  storedBytes?: number;
}

/** The running sum of a sliced erasure: counts by category, and the processors the service said it told. */
export interface ErasureProgress {
  affected: Record<string, number>;
  told: string[];
  /**
   * Attempts that ended because the service still had more (`ErasureContinues`), or had not yet acted on a
   * restriction's or objection's event (`NotHandledYet`): no failures, not counted as such.
   */
  continued?: number;
  /** Times the step's lease ran out while it ran (its worker died, or was killed for its memory). */
  lapsed?: number;
}

/**
 * Keeps the step's lease, and with an erasure's slices what they deleted so far (merged into what the step keeps);
 * throws once another worker took the step.
 */
export type StillMine = (progress?: Omit<ErasureProgress, 'continued' | 'lapsed'>) => Promise<void>;

/** A step trying again cannot help (an export larger than a package holds, a step its workers keep dying on): the request fails, compliance hears. */
export class HopelessStep extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HopelessStep';
  }
}

/** A sliced erasure that still had more to delete after an attempt's calls: asked again at the next attempt. */
export class ErasureContinues extends Error {
  constructor(service: string, slices: number) {
    super(`${service} still had more to erase after ${slices} slices; it is asked again at the next attempt`);
    this.name = 'ErasureContinues';
  }
}

/** A service that has not yet acted on a restriction or objection: asked again after the retry delay. */
export class NotHandledYet extends Error {
  constructor(service: string, eventType: string) {
    super(`${service} has not yet acted on ${eventType}`);
    this.name = 'NotHandledYet';
  }
}

export type StepOutcome =
  | { kind: 'exported'; section: PrivacyExport; counts: Record<string, number> }
  | { kind: 'erased'; affected: Record<string, number>; processors: { id: string; confirmed: boolean }[] }
  | { kind: 'handled'; consumers: number };

const count = (v: unknown): number => (Array.isArray(v) ? v.length : v === null || v === undefined ? 0 : 1);

/**
 * One step: the service's `privacy.export` or `privacy.erase` RPC, or for a restriction or objection its
 * `privacy.handled` (done once the service acted on the event), with a timeout. Throws on any failure.
 */
@Injectable()
export class StepRunner {
  constructor(
    private readonly rpc: RpcClient,
    @Inject(PRIVACY_CONFIG) private readonly config: PrivacyConfig,
  ) {}

  /** `stillMine`: called after each page of an export and each slice of an erasure that has more. */
  async run(step: ClaimedStep, stillMine: StillMine = async () => undefined): Promise<StepOutcome> {
    const contract = privacyRpcs(step.service);
    const timeoutMs = this.config.PRIVACY_STEP_TIMEOUT_MS;
    if (step.action === 'notify') {
      if (!step.event) throw new Error(`the ${step.service} step of request ${step.requestId} has no event to ask about`);
      const answer = await this.rpc.call(contract.handled, { eventId: step.event.id, type: step.event.type }, { timeoutMs });
      if (answer?.handled !== true) throw new NotHandledYet(step.service, step.event.type);
      return { kind: 'handled', consumers: Number(answer.consumers) || 0 };
    }
    if (step.userId === null) throw new Error(`request ${step.requestId} names no subject any more`);
    const input = { userId: step.userId, scope: step.scope as 'all', requestId: step.requestId };
    if (step.action === 'export') {
      const pages: PrivacyExport[] = [];
      // Counted as the pages come, on top of the parts already stored: a package past what it may hold fails now,
      // before it fills the worker's memory.
      let bytes = step.storedBytes ?? 0;
      for (let page: number | string | undefined = 0; page !== undefined; ) {
        const answer: PrivacyExport = await this.rpc.call(contract.export, { ...input, page }, { timeoutMs });
        if (!answer || typeof answer.categories !== 'object' || answer.categories === null) throw new Error(`${step.service} answered an export without categories`);
        bytes += Buffer.byteLength(JSON.stringify(answer.categories));
        if (bytes > this.config.PRIVACY_EXPORT_MAX_BYTES) {
          throw new HopelessStep(
            `the export passed ${bytes} bytes with ${step.service}'s ${pages.length + 1} pages, more than one package holds (PRIVACY_EXPORT_MAX_BYTES ${this.config.PRIVACY_EXPORT_MAX_BYTES}): compliance hands it over another way`,
          );
        }
        pages.push(answer);
        page = answer.nextPage;
        if (page !== undefined) await stillMine();
      }
      const section = mergeExportPages(pages);
      if (!section || typeof section.categories !== 'object' || section.categories === null) throw new Error(`${step.service} answered an export without categories`);
      const counts = Object.fromEntries(Object.entries(section.categories).map(([k, v]) => [k, count(v)]));
      return { kind: 'exported', section: { service: step.service, categories: section.categories }, counts };
    }
    // In slices: a service with much to delete answers `more` and is asked again, each call within the timeout;
    // the sum so far is kept with the step, for the attempt that finishes it.
    const affected: Record<string, number> = { ...step.progress?.affected };
    const told = new Set<string>(step.progress?.told);
    for (let slices = 1; ; slices++) {
      const erased = (await this.rpc.call(contract.erase, { ...input, slices: true }, { timeoutMs })) as PrivacyErasure & PrivacyErasureProcessorReport;
      if (!erased || typeof erased.affected !== 'object' || erased.affected === null) throw new Error(`${step.service} answered an erasure without counts`);
      for (const [k, v] of Object.entries(erased.affected)) affected[k] = (affected[k] ?? 0) + (Number(v) || 0);
      for (const p of erased.processorsNotified ?? []) told.add(p.toLowerCase());
      if (erased.more !== true) break;
      await stillMine({ affected, told: [...told] });
      if (slices >= this.config.PRIVACY_ERASE_SLICES_PER_ATTEMPT) throw new ErasureContinues(step.service, slices);
    }
    // Art. 19: the processors of this service's categories that keep copies of their own.
    const processors = processorsOf(categoriesOf(step.service).flatMap((c) => c.processors))
      .filter((p) => p.holdsCopies)
      .map((p) => ({ id: p.id, confirmed: told.has(p.id) || told.has(p.name.toLowerCase()) }));
    return { kind: 'erased', affected, processors };
  }
}
