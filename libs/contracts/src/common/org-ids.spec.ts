import { describe, expect, it } from '@jest/globals';
import { workspaceSchema } from '../identity/identity.schemas.js';
import { privacyScopeSchema } from './privacy-rpc.js';

const ORG = 'B43363A7-A531-468C-9D2A-E351FBA2CA06';

describe('organisation ids at the boundary', () => {
  it('are one spelling, lower case, as workspaces and as data-subject request scopes alike', () => {
    expect(workspaceSchema.parse(ORG)).toBe(ORG.toLowerCase());
    expect(privacyScopeSchema.parse(ORG)).toBe(ORG.toLowerCase());
    expect(workspaceSchema.parse('private')).toBe('private');
    expect(privacyScopeSchema.parse('all')).toBe('all');
  });
});
