import { allDataCategories, categoriesOf, personalDataServices, type DataCategory, type PrivacyRequestType, type PrivacyStepAction } from '@ally/contracts';

export interface PlannedStep {
  service: string;
  action: PrivacyStepAction;
  phase: number;
}

/**
 * The steps of a request, derived from the data categories the services
 * declare in contracts: a new service with personal data gets a step without
 * a change here. Identity's erasure of the account runs last (phase 1), once
 * every other service has confirmed, because it ends the account. Of one
 * organisation's workspace it runs first: it ends the membership, so nothing
 * the subject writes there while the others erase outlives the erasure.
 */
export function planSteps(type: PrivacyRequestType, categories: readonly DataCategory[] = allDataCategories, scope = 'all'): PlannedStep[] {
  const services = personalDataServices(categories);
  switch (type) {
    case 'access':
    case 'portability':
      return services.map((service) => ({ service, action: 'export', phase: 0 }));
    case 'erasure': {
      const ofOrganisation = scope !== 'all' && scope !== 'private';
      return services.map((service) => ({ service, action: 'erase', phase: Number((service === 'identity') !== ofOrganisation) }));
    }
    case 'restriction':
      return services.map((service) => ({ service, action: 'notify', phase: 0 }));
    case 'objection':
      // Art. 21 reaches processing based on legitimate interest only.
      return services.filter((s) => objectableCategories(s, categories).length > 0).map((service) => ({ service, action: 'notify', phase: 0 }));
    case 'rectification':
      return [];
  }
}

export const objectableCategories = (service: string, categories: readonly DataCategory[] = allDataCategories): string[] =>
  categoriesOf(service, categories)
    .filter((c) => c.basis === 'legitimate interest (Art. 6(1)(f) GDPR)')
    .map((c) => c.category);

/**
 * What an objection reaches, named alike in both of its events (objected,
 * upheld): the legitimate-interest categories of the services it notifies.
 * privacy's own legal holds are not among them: they serve legal claims,
 * which an objection does not stop (Art. 21(1) GDPR).
 */
export const objectedCategories = (categories: readonly DataCategory[] = allDataCategories): string[] =>
  planSteps('objection', categories).flatMap((s) => objectableCategories(s.service, categories));
