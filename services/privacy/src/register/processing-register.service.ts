import { Injectable } from '@nestjs/common';
import { allDataCategories, CONTROLLER, processorsOf, type ProcessingActivity, type ProcessingRegister } from '@ally/contracts';
import { inForce } from '../retention/retention-in-force.js';
import { RetentionPoliciesService } from '../retention/retention-policies.service.js';

const DATA_SUBJECTS: Record<string, string> = {
  identity: 'users (employees of customer organisations, private users), invitees',
  chat: 'users',
  billing: 'customers (organisations and private users) and their users',
  notify: 'users and invitees',
  privacy: 'users; website visitors (consent records, pseudonymous)',
};

/** RFC 4180, and a leading = + - @ neutralised so a spreadsheet never runs a cell as a formula. */
function csvCell(value: unknown): string {
  let s = value === null || value === undefined ? '' : String(value);
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/**
 * The register of processing activities (Art. 30 GDPR), generated from the
 * data categories in contracts, the processor catalog and the retention
 * policies in force: nothing is kept by hand.
 */
@Injectable()
export class ProcessingRegisterService {
  constructor(private readonly policies: RetentionPoliciesService) {}

  async register(): Promise<ProcessingRegister> {
    const policies = await this.policies.list();
    const activities: ProcessingActivity[] = allDataCategories.map((c) => {
      const held = inForce(c, policies);
      return {
        service: c.service,
        category: c.category,
        description: c.description,
        purposes: c.purposes,
        basis: held.basis as ProcessingActivity['basis'],
        retentionDays: held.retentionDays,
        retention: held.retention,
        dataSubjects: DATA_SUBJECTS[c.service] ?? 'users',
        recipients: processorsOf(c.processors).map((r) => ({ name: r.name, address: r.address, country: r.country, service: r.service, transferBasis: r.transferBasis })),
      };
    });
    return { controller: { name: CONTROLLER.name, address: CONTROLLER.address, email: CONTROLLER.email }, generatedAt: new Date().toISOString(), activities };
  }

  async csv(): Promise<string> {
    const { activities } = await this.register();
    const header = ['service', 'category', 'description', 'purposes', 'legal basis', 'retention days', 'retention', 'data subjects', 'recipients and processors', 'transfer bases'];
    const rows = activities.map((a) => [
      a.service,
      a.category,
      a.description,
      a.purposes.join('; '),
      a.basis,
      a.retentionDays ?? '',
      a.retention,
      a.dataSubjects,
      a.recipients.map((r) => `${r.name} (${r.country})`).join('; '),
      a.recipients.map((r) => `${r.name}: EU/EEA ${r.transferBasis.euEea}; Switzerland ${r.transferBasis.switzerland}`).join(' | '),
    ]);
    return [header, ...rows].map((r) => r.map(csvCell).join(',')).join('\r\n') + '\r\n';
  }
}
