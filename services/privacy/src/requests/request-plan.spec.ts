import { describe, expect, it } from '@jest/globals';
import { allDataCategories, type DataCategory } from '@ally/contracts';
import { planSteps } from './request-plan.js';

describe('planSteps', () => {
  it('gives an erasure one step per service holding personal data, identity in the last phase', () => {
    expect(planSteps('erasure').sort((a, b) => a.service.localeCompare(b.service))).toEqual([
      { service: 'billing', action: 'erase', phase: 0 },
      { service: 'chat', action: 'erase', phase: 0 },
      { service: 'identity', action: 'erase', phase: 1 },
      { service: 'notify', action: 'erase', phase: 0 },
    ]);
  });

  it("ends the membership first for an erasure of one organisation's workspace: nothing written there meanwhile outlives it", () => {
    const org = '0b7c7b7e-7a53-4c1e-9d43-3f1f0d7f9c11';
    expect(planSteps('erasure', undefined, org).sort((a, b) => a.service.localeCompare(b.service))).toEqual([
      { service: 'billing', action: 'erase', phase: 1 },
      { service: 'chat', action: 'erase', phase: 1 },
      { service: 'identity', action: 'erase', phase: 0 },
      { service: 'notify', action: 'erase', phase: 1 },
    ]);
    expect(planSteps('erasure', undefined, 'private').find((s) => s.service === 'identity')?.phase).toBe(1);
  });

  it('follows the categories: a service that declares one gets a step, without a change to privacy', () => {
    const withNew: DataCategory[] = [...allDataCategories, { ...allDataCategories[0], service: 'privacy' }, { ...allDataCategories[0], service: 'search' as DataCategory['service'], category: 'index' }];
    expect(planSteps('access', withNew).map((s) => s.service)).toContain('search');
  });

  it('reaches only legitimate-interest processing with an objection', () => {
    expect(planSteps('objection').map((s) => s.service).sort()).toEqual(['identity', 'notify']);
  });
});
