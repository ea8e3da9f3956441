import { periodSchema } from '@ally/contracts';
import { MESSAGING_MIGRATIONS } from '@ally/messaging';
import type { ServiceDefinition } from '@ally/platform';
import { BillingModule } from './billing.module.js';
import { billingConfigSchema, type BillingConfig } from './config.js';
import { InvoicesService } from './invoices/invoices.service.js';
import { MeterReporter } from './ledger/meter-reporter.service.js';
import { ReconciliationService } from './ledger/reconciliation.service.js';
import { InitialSchema1764500000000 } from './migrations/1764500000000-initial-schema.js';
import { LowerCaseWorkspaces1765400000000 } from './migrations/1765400000000-lower-case-workspaces.js';
import { MeterRefused1765600000000 } from './migrations/1765600000000-meter-refused.js';
import { ErasedSubjects1765700000000 } from './migrations/1765700000000-erased-subjects.js';
import { PeriodQuotas1765800000000 } from './migrations/1765800000000-period-quotas.js';
import { MeterRefusals1765900000000 } from './migrations/1765900000000-meter-refusals.js';
import { ScheduledJobs1766000000000 } from './migrations/1766000000000-scheduled-jobs.js';
import { CapSetAt1766100000000 } from './migrations/1766100000000-cap-set-at.js';
import { ErasedContractKeys1766200000000 } from './migrations/1766200000000-erased-contract-keys.js';
import { InvoiceNet1766300000000 } from './migrations/1766300000000-invoice-net.js';
import { LowerCaseCapMembers1766400000000 } from './migrations/1766400000000-lower-case-cap-members.js';
import { MeterResends1766500000000 } from './migrations/1766500000000-meter-resends.js';
import { LedgerBySubject1767300000000 } from './migrations/1767300000000-ledger-by-subject.js';
import { InvoiceFinalized1767400000000 } from './migrations/1767400000000-invoice-finalized.js';
import { AlertsPerQuota1767600000000 } from './migrations/1767600000000-alerts-per-quota.js';
import { ErasedWorkspaces1767600000001 } from './migrations/1767600000001-erased-workspaces.js';

/** A command's month argument, or its usage line. */
function month(value: string | undefined, usage: string): string {
  const parsed = periodSchema.safeParse(value);
  if (!parsed.success) throw new Error(`usage: ${usage}: a month such as 2026-10${value === undefined ? '' : `, not "${value}"`}`);
  return parsed.data;
}

/** billing: plans, Stripe subscriptions and webhooks, the usage ledger, quotas, invoices. */
export const billingService: ServiceDefinition<BillingConfig> = {
  name: 'billing',
  configSchema: billingConfigSchema,
  database: { schema: 'billing', entities: [], migrations: [InitialSchema1764500000000, LowerCaseWorkspaces1765400000000, MeterRefused1765600000000, ErasedSubjects1765700000000, PeriodQuotas1765800000000, MeterRefusals1765900000000, ScheduledJobs1766000000000, CapSetAt1766100000000, ErasedContractKeys1766200000000, InvoiceNet1766300000000, LowerCaseCapMembers1766400000000, MeterResends1766500000000, ...MESSAGING_MIGRATIONS, LedgerBySubject1767300000000, InvoiceFinalized1767400000000, AlertsPerQuota1767600000000, ErasedWorkspaces1767600000001] },
  module: (ctx) => BillingModule.forRoot(ctx),
  commands: {
    /** `export-invoices 2026-10`: the month's bookkeeping CSV on stdout. */
    'export-invoices': async (app, [period]) => app.get(InvoicesService).exportCsv(month(period, 'export-invoices <YYYY-MM>')),
    /** Reports every due ledger entry to Stripe now. */
    'report-usage': async (app) => `reported ${await app.get(MeterReporter).drain()} meter events`,
    /** `reconcile [2026-10]`: the ledger's reported tokens against Stripe's meter summaries (default: this month). */
    reconcile: async (app, [period]) => {
      const r = await app.get(ReconciliationService).reconcile(period === undefined ? undefined : month(period, 'reconcile [YYYY-MM]'));
      const lines = [
        ...r.discrepancies.map((d) => `${d.workspace}: ledger ${d.ledgerTokens} tokens, Stripe ${d.stripeTokens}`),
        ...r.unchecked.map((w) => `${w}: not compared, Stripe has no such customer (see the log)`),
      ];
      return [`${r.period}: ${r.workspaces - r.unchecked.length} of ${r.workspaces} workspaces compared, ${r.discrepancies.length} discrepancies`, ...lines].join('\n');
    },
  },
};
