import { describe, expect, it } from '@jest/globals';
import { capInput } from '../billing/billing.schemas.js';
import { removeMemberInput, workspaceSchema } from '../identity/identity.schemas.js';
import { privacyScopeSchema } from './privacy-rpc.js';

const ORG = 'B43363A7-A531-468C-9D2A-E351FBA2CA06';

describe('organisation ids at the boundary', () => {
  it('are one spelling, lower case, as workspaces and as data-subject request scopes alike', () => {
    expect(workspaceSchema.parse(ORG)).toBe(ORG.toLowerCase());
    expect(privacyScopeSchema.parse(ORG)).toBe(ORG.toLowerCase());
    expect(workspaceSchema.parse('private')).toBe('private');
    expect(privacyScopeSchema.parse('all')).toBe('all');
  });

  it('are one spelling wherever an id is taken: paths, bodies, members', () => {
    const USER = 'E351FBA2-A531-468C-9D2A-B43363A7CA06';
    expect(removeMemberInput.parse({ orgId: ORG, userId: USER })).toEqual({ orgId: ORG.toLowerCase(), userId: USER.toLowerCase() });
    expect(capInput.parse({ workspace: ORG, userId: USER, monthlyTokens: 1 })).toMatchObject({ workspace: ORG.toLowerCase(), userId: USER.toLowerCase() });
  });
});
