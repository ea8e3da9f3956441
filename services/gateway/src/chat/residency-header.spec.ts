import { describe, expect, it } from '@jest/globals';
import { validateHeaderValue } from 'node:http';
import type { ResidencyReceipt } from '@ally/contracts';
import { RESIDENCY_HEADER, residencyHeaderValue } from './residency-header.js';

const receipt = (allowedModels: string[] | null): ResidencyReceipt => ({
  provider: 'azure',
  deployment: 'gpt-4o-mini@azure-swedencentral',
  deploymentType: 'regional',
  region: 'swedencentral',
  reportedRegion: null,
  euResident: true,
  policy: { restrictToEu: true, orgEuOnly: true, allowedModels, workspace: '0b7c7b7e-7a53-4c1e-9d43-3f1f0d7f9c11' },
  at: '2026-01-01T00:00:00.000Z',
});

describe(residencyHeaderValue.name, () => {
  it('writes a receipt of plain ASCII as its JSON', () => {
    const r = receipt(['gpt-4o-mini', 'mistral-small']);
    expect(residencyHeaderValue(r)).toBe(JSON.stringify(r));
  });

  it('escapes every character outside printable ASCII, and JSON.parse gives the same receipt back', () => {
    // Stored before allowedModels was restricted: latin-1, above U+00FF, astral, DEL, controls, a lone surrogate.
    const r = receipt(['Mistral – klein', 'Modèle', 'モデル', 'gpt🙂', 'a\u007fb', 'tab\there\n', '\ud800', 'quote"back\\slash']);
    const value = residencyHeaderValue(r);
    expect(value).toMatch(/^[\x20-\x7e]*$/);
    expect(value).toContain('Mistral \\u2013 klein');
    expect(JSON.parse(value)).toEqual(r);
  });

  it('is a value Node accepts in a header, where the plain JSON is not', () => {
    const r = receipt(['Mistral – klein', 'ÿ€']);
    expect(() => validateHeaderValue(RESIDENCY_HEADER, residencyHeaderValue(r))).not.toThrow();
    expect(() => validateHeaderValue(RESIDENCY_HEADER, JSON.stringify(r))).toThrow();
  });
});
