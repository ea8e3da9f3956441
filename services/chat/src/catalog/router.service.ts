import { Inject, Injectable } from '@nestjs/common';
import { MODEL_NOT_FOUND, ProblemError } from '@ally/contracts';
import type { RoutingPolicy } from '../policy/policy.service.js';
import type { Deployment } from './model-catalog.js';

export const CATALOG = Symbol('CATALOG');

/** Which deployments a policy allows, best first. Never a silent route outside the EU. */
@Injectable()
export class RouterService {
  /** Deployments configured as EU that reported a region outside the EU (OutsideEuQuarantine keeps the list), and since when this replica knows. */
  private readonly reportedOutsideEu = new Map<string, number>();

  /** The widest context window of any deployment: no conversation sends more history than this. */
  readonly largestContextWindow: number;

  constructor(@Inject(CATALOG) private readonly catalog: Deployment[]) {
    this.largestContextWindow = catalog.reduce((widest, d) => Math.max(widest, d.contextWindow), 0);
  }

  /** The deployment behind an id of the catalog, if it still has one. */
  deployment(id: string): Deployment | undefined {
    return this.catalog.find((d) => d.id === id);
  }

  /**
   * A deployment configured as EU said it served from outside the EU. Every
   * prompt sent to it has left the EU before its answer can be dropped, so
   * EU-only callers are not routed to it again until a probe finds it back in the EU.
   */
  quarantineOutsideEu(deploymentId: string): void {
    this.reportedOutsideEu.set(deploymentId, Date.now());
  }

  /** A probe found it serving in the EU again. */
  releaseOutsideEu(deploymentId: string): void {
    this.reportedOutsideEu.delete(deploymentId);
  }

  /**
   * The quarantined deployments as the database lists them. One this replica heard of in the last `pendingMs`
   * stays even when missing there: the list may have been read before its row was written.
   */
  replaceOutsideEu(deploymentIds: string[], pendingMs: number): void {
    const listed = new Set(deploymentIds);
    for (const [id, since] of this.reportedOutsideEu) if (!listed.has(id) && since < Date.now() - pendingMs) this.reportedOutsideEu.delete(id);
    for (const id of listed) this.quarantineOutsideEu(id);
  }

  /** EU-resident as far as routing knows now: configured so, and not reported outside the EU since its last probe. */
  isEuResidentNow(d: Deployment): boolean {
    return d.euResident && !this.reportedOutsideEu.has(d.id);
  }

  allowed(policy: RoutingPolicy): Deployment[] {
    return this.bestFirst(this.catalog.filter((d) => (!policy.euOnly || this.isEuResidentNow(d)) && (!policy.allowedModels || policy.allowedModels.includes(d.model))));
  }

  /** EU before non-EU (a deployment lately reported outside the EU counting as non-EU), then by priority. */
  private bestFirst(deployments: Deployment[]): Deployment[] {
    const eu = new Map(deployments.map((d) => [d, this.isEuResidentNow(d)]));
    return deployments.sort((a, b) => Number(eu.get(b)) - Number(eu.get(a)) || a.priority - b.priority);
  }

  /** The deployments that may serve `model`, in the order to try them; 422 with the reason when none may. */
  candidates(model: string, policy: RoutingPolicy): Deployment[] {
    const all = this.catalog.filter((d) => d.model === model);
    if (all.length === 0) {
      // The type gives OpenAI clients the code they know for it (model_not_found).
      throw new ProblemError(404, `Unknown model "${model}"`, { type: MODEL_NOT_FOUND, errors: [{ field: 'model', message: 'is not in the model catalog' }] });
    }
    if (policy.allowedModels && !policy.allowedModels.includes(model)) {
      throw new ProblemError(422, `Your organisation does not allow the model "${model}"`, { type: 'https://ally.eu/problems/model-not-allowed' });
    }
    const allowed = this.allowed(policy).filter((d) => d.model === model);
    if (allowed.length === 0) {
      const who = policy.orgEuOnly ? 'your organisation enforces EU-only processing' : 'your account is restricted to the EU (restrictToEu)';
      throw new ProblemError(422, `No EU deployment of "${model}" is available and ${who}`, { type: 'https://ally.eu/problems/no-eu-deployment' });
    }
    return allowed;
  }

  /** Whether `model` has a deployment the policy allows (what `candidates` would not refuse). */
  allows(model: string, policy: RoutingPolicy): boolean {
    return this.allowed(policy).some((d) => d.model === model);
  }

  /**
   * The model for a request that names none: the configured default where the
   * policy allows it, else the first model it does allow (an organisation that
   * allows only its own EU model gets that one); with none, a 422 saying why.
   */
  defaultModel(policy: RoutingPolicy, configured: string): string {
    if (this.allows(configured, policy)) return configured;
    const first = this.models(policy)[0]?.model;
    if (first) return first;
    const eu = policy.orgEuOnly ? 'your organisation enforces EU-only processing' : 'your account is restricted to the EU (restrictToEu)';
    if (policy.allowedModels?.length === 0) throw new ProblemError(422, 'Your organisation allows no model', { type: 'https://ally.eu/problems/model-not-allowed' });
    if (policy.allowedModels) {
      const names = policy.allowedModels.map((m) => `"${m}"`).join(', ');
      throw new ProblemError(422, `No model can be used: your organisation allows only ${names}, none has an EU deployment available, and ${eu}`, { type: 'https://ally.eu/problems/no-eu-deployment' });
    }
    throw new ProblemError(422, `No EU deployment of any model is available and ${eu}`, { type: 'https://ally.eu/problems/no-eu-deployment' });
  }

  /** Of `models`, those no deployment in the catalog serves; and every model it has. */
  checkCatalog(models: string[]): { unknown: string[]; known: string[] } {
    const known = [...new Set(this.catalog.map((d) => d.model))];
    return { unknown: models.filter((m) => !known.includes(m)), known };
  }

  /** Models a policy allows, each with where its preferred deployment runs and whether it counts as EU now (not while reported outside). */
  models(policy: RoutingPolicy): { model: string; region: string; euResident: boolean }[] {
    const seen = new Map<string, Deployment>();
    for (const d of this.allowed(policy)) if (!seen.has(d.model)) seen.set(d.model, d);
    return [...seen.values()].map((d) => ({ model: d.model, region: d.region, euResident: this.isEuResidentNow(d) }));
  }

  /**
   * Moderation endpoints that may see a prompt bound for `target`, best first:
   * the same residency rule as the completion (an EU-only policy, or an EU
   * route, is moderated in the EU only), of a model the policy allows (an
   * organisation that allows only its self-hosted model sends its prompts to
   * no one else's), EU before non-EU, then by priority.
   */
  moderators(policy: RoutingPolicy, target: Deployment): Deployment[] {
    const euRoute = this.isEuResidentNow(target);
    return this.bestFirst(
      this.catalog.filter(
        (d) => d.moderation && ((!policy.euOnly && !euRoute) || this.isEuResidentNow(d)) && (!policy.allowedModels || policy.allowedModels.includes(d.model)),
      ),
    );
  }
}
