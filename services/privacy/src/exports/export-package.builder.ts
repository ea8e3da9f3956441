import { allDataCategories, categoriesOf, CONTROLLER, processorsOf, type DataCategory, type PrivacyExport } from '@ally/contracts';
import { inForce, type PolicyInForce } from '../retention/retention-in-force.js';
import { inferSchema, type JsonSchema } from './json-schema.js';

export interface PackageInput {
  requestId: string;
  type: 'access' | 'portability';
  scope: string;
  receivedAt: string;
  completedAt: string;
  downloadUntil: string;
  /** Each service's answer to `privacy.export`. */
  sections: PrivacyExport[];
  /** privacy's own records about the subject. */
  privacySection: PrivacyExport;
  /** The retention policies in force (compliance may have changed the contracts' defaults). */
  policies: readonly PolicyInForce[];
}

const SOURCES: Record<string, string> = {
  identity: 'provided by you at registration and in your settings; sign-in data collected when you use the service',
  chat: 'provided by you (your messages and assistants) and generated for you (the model answers)',
  billing: 'provided by you at checkout; usage recorded when you use the service; invoices from Stripe',
  notify: 'generated when Ally sent you an email; delivery status reported by Brevo',
  privacy: 'generated when you made data-subject requests',
};

const count = (v: unknown): number => (Array.isArray(v) ? v.length : v === null || v === undefined ? 0 : 1);

/** Art. 15(1) GDPR for one category: purposes, legal basis, recipients, retention, source, no automated decisions. */
function categoryInformation(c: DataCategory, policies: readonly PolicyInForce[]) {
  const held = inForce(c, policies);
  return {
    service: c.service,
    category: c.category,
    description: c.description,
    purposes: c.purposes,
    legalBasis: held.basis,
    recipients: processorsOf(c.processors).map((p) => ({ name: p.name, address: p.address, role: p.service, transferBasis: p.transferBasis })),
    retention: held.retention,
    retentionDays: held.retentionDays,
    source: SOURCES[c.service] ?? 'collected by Ally',
    automatedDecisionMaking: 'none: no decision based solely on automated processing, including profiling, is taken about you (Art. 22 GDPR)',
  };
}

function sectionSchema(section: PrivacyExport): JsonSchema {
  const declared = categoriesOf(section.service);
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: `schemas/${section.service}.schema.json`,
    title: `Ally: your data held by the ${section.service} service`,
    type: 'object',
    properties: {
      service: { const: section.service },
      categories: {
        type: 'object',
        properties: Object.fromEntries(
          Object.entries(section.categories).map(([name, value]) => {
            const c = declared.find((d) => d.category === name);
            return [name, { description: c ? `${c.description}. Purposes: ${c.purposes.join('; ')}.` : 'Further data held by this service', ...inferSchema(value) }];
          }),
        ),
      },
    },
    required: ['service', 'categories'],
  };
}

function readme(input: PackageInput, files: string[]): string {
  const lines = [
    `# Your data at Ally`,
    ``,
    `Request ${input.requestId} (${input.type}, scope: ${input.scope}), received ${input.receivedAt}, prepared ${input.completedAt}.`,
    `Controller: ${CONTROLLER.name}, ${CONTROLLER.address}, ${CONTROLLER.email}.`,
    `This package can be downloaded until ${input.downloadUntil}; after that it is deleted.`,
    ``,
    `All files are UTF-8 JSON. Every data file is described by a JSON Schema (2020-12) in schemas/, so the data can be read by other programs (Art. 20 GDPR).`,
    ``,
    `## Files`,
    ``,
    `- README.md: this description.`,
    `- information.json: for every category of data, its purposes, legal basis, recipients and processors (with the basis of any transfer outside the EU), how long it is kept, where it comes from, and that no automated decision-making takes place (Art. 15(1) GDPR); your rights and the supervisory authority.`,
    `- request.json: the request this package answers.`,
  ];
  for (const s of [...input.sections, input.privacySection]) {
    lines.push(`- data/${s.service}.json: what the ${s.service} service holds about you, by category (schema: schemas/${s.service}.schema.json):`);
    for (const [name, value] of Object.entries(s.categories)) {
      const c = categoriesOf(s.service).find((d) => d.category === name);
      lines.push(`  - ${name} (${count(value)} ${count(value) === 1 ? 'entry' : 'entries'}): ${c?.description ?? 'further data held by this service'}`);
    }
  }
  lines.push(`- schemas/*.schema.json: the JSON Schemas of the data files.`, ``, `Files in this package: ${files.length}.`, ``);
  return lines.join('\n');
}

/** The files of an export package: README, Art. 15 information, the data per service and its schemas. */
export function buildPackageFiles(input: PackageInput): Record<string, string> {
  const sections = [...input.sections, input.privacySection];
  const held = new Set(sections.flatMap((s) => Object.keys(s.categories).map((c) => `${s.service}/${c}`)));
  const information = {
    controller: { name: CONTROLLER.name, address: CONTROLLER.address, email: CONTROLLER.email },
    privacyPolicyVersion: CONTROLLER.privacyPolicyVersion,
    categories: allDataCategories.filter((c) => held.has(`${c.service}/${c.category}`)).map((c) => categoryInformation(c, input.policies)),
    automatedDecisionMaking: 'none (Art. 15(1)(h), Art. 22 GDPR)',
    rights: [
      'access (Art. 15 GDPR)',
      'rectification (Art. 16 GDPR): PATCH /v1/me, and POST /v1/me/email for the address',
      'erasure (Art. 17 GDPR)',
      'restriction of processing (Art. 18 GDPR)',
      'data portability (Art. 20 GDPR)',
      'objection (Art. 21 GDPR)',
      'withdrawal of consent at any time (Art. 7(3) GDPR)',
      'complaint to a supervisory authority (Art. 77 GDPR)',
      'in Switzerland, under the Swiss DSG: access (Art. 25 DSG), release or transfer of the data you gave us in a common electronic format (Art. 28 DSG), rectification, objection, erasure and destruction (Art. 32 DSG)',
    ],
    supervisoryAuthority: CONTROLLER.supervisoryAuthority,
  };
  const files: Record<string, string> = {
    'information.json': JSON.stringify(information, null, 2),
    'request.json': JSON.stringify({ id: input.requestId, type: input.type, scope: input.scope, receivedAt: input.receivedAt, completedAt: input.completedAt, downloadUntil: input.downloadUntil }, null, 2),
  };
  for (const s of sections) {
    files[`data/${s.service}.json`] = JSON.stringify({ service: s.service, categories: s.categories }, null, 2);
    files[`schemas/${s.service}.schema.json`] = JSON.stringify(sectionSchema(s), null, 2);
  }
  return { 'README.md': readme(input, Object.keys(files).concat('README.md')), ...files };
}
