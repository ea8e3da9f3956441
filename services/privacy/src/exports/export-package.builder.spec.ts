import { describe, expect, it } from '@jest/globals';
import { buildPackageFiles } from './export-package.builder.js';

describe(buildPackageFiles.name, () => {
  const sut = buildPackageFiles({
    requestId: '0190f0f0-0000-7000-8000-000000000001',
    type: 'portability',
    scope: 'all',
    receivedAt: '2026-11-01T10:00:00.000Z',
    completedAt: '2026-11-01T10:00:05.000Z',
    downloadUntil: '2026-11-08T10:00:05.000Z',
    sections: [{ service: 'identity', categories: { account: { email: 'a@example.eu' }, 'login-audit': [{ ip: '10.0.0.1' }, { ip: '10.0.0.2' }] } }],
    privacySection: { service: 'privacy', categories: { 'data-subject-requests': [] } },
    // Compliance shortened the login audit to 7 days.
    policies: [{ service: 'identity', category: 'login-audit', retentionDays: 7, basis: 'legitimate interest (Art. 6(1)(f) GDPR)' }],
  });

  it('states per held category the Art. 15(1) facts', () => {
    const info = JSON.parse(sut['information.json']);
    expect(info.categories.map((c: { category: string }) => c.category).sort()).toEqual(['account', 'data-subject-requests', 'login-audit']);
    expect(info.categories.find((c: { category: string }) => c.category === 'login-audit')).toMatchObject({
      legalBasis: 'legitimate interest (Art. 6(1)(f) GDPR)',
      // The period in force, in the number and the words alike.
      retentionDays: 7,
      retention: expect.stringMatching(/^7 days \(set by the compliance team; by default: deleted after 30 days\)$/),
      recipients: [{ name: 'Hetzner Online GmbH' }],
      source: expect.any(String),
      automatedDecisionMaking: expect.stringMatching(/^none/),
    });
    expect(info.supervisoryAuthority).toContain('Baden-Württemberg');
  });

  it('describes every data file with a JSON schema and in the README', () => {
    const schema = JSON.parse(sut['schemas/identity.schema.json']);
    expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(schema.properties.categories.properties['login-audit']).toMatchObject({ type: 'array', description: expect.stringContaining('IP address') });
    expect(sut['README.md']).toContain('login-audit (2 entries)');
    expect(sut['README.md']).toContain('schemas/identity.schema.json');
  });
});
