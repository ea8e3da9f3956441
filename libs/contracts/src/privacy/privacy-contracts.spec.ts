import { describe, expect, it } from '@jest/globals';
import { allDataCategories, personalDataServices } from './data-category-registry.js';
import { PROCESSORS, processorsOf } from './processors.js';

describe('privacy contracts', () => {
  it('ties every processor named by a data category to an entry of the processor catalog', () => {
    for (const c of allDataCategories) {
      for (const name of c.processors) expect({ category: c.category, name, found: processorsOf([name]).length > 0 }).toEqual({ category: c.category, name, found: true });
    }
  });

  it('names the processors of the privacy policy, each with transfer bases for the EU/EEA and Switzerland', () => {
    expect(PROCESSORS.map((p) => p.id).sort()).toEqual(['brevo', 'hetzner', 'microsoft', 'openai', 'pathway', 'stripe', 'webflow']);
    for (const p of PROCESSORS) expect(p.transferBasis.euEea.length * p.transferBasis.switzerland.length).toBeGreaterThan(0);
    // "Azure OpenAI" is Microsoft's service, not OpenAI's.
    expect(processorsOf(['Microsoft Ireland (Azure OpenAI, EU regions)']).map((p) => p.id)).toEqual(['microsoft']);
  });

  it('derives the services a request has a step for from the declared categories, identity last, privacy not at all', () => {
    const services = personalDataServices();
    expect(services.at(-1)).toBe('identity');
    expect(services).not.toContain('privacy');
    expect([...services].sort()).toEqual(['billing', 'chat', 'identity', 'notify']);
    expect(personalDataServices([{ ...allDataCategories[0], service: 'chat' }, { ...allDataCategories[0], service: 'identity' }])).toEqual(['chat', 'identity']);
  });

  it('declares each category once per service', () => {
    const keys = allDataCategories.map((c) => `${c.service}/${c.category}`);
    expect(new Set(keys).size).toBe(keys.length);
  });
});
