import { MESSAGING_MIGRATIONS } from '@ally/messaging';
import type { ServiceDefinition } from '@ally/platform';
import { AuditTrail } from './audit/audit-trail.service.js';
import { privacyConfigSchema, type PrivacyConfig } from './config.js';
import { InitialSchema1764600000000 } from './migrations/1764600000000-initial-schema.js';
import { RequestTimesInMilliseconds1765400000000 } from './migrations/1765400000000-request-times-in-milliseconds.js';
import { PrivacyModule } from './privacy.module.js';
import { RetentionRunsService } from './retention/retention-runs.service.js';
import { LowerCaseScopes1765500000000 } from './migrations/1765500000000-lower-case-scopes.js';
import { Decisions1765600000000 } from './migrations/1765600000000-decisions.js';
import { AuditAnchor1766400000000 } from './migrations/1766400000000-audit-anchor.js';
import { FailedExportsKeepNothing1766900000000 } from './migrations/1766900000000-failed-exports-keep-nothing.js';
import { ConsentsByTime1767100000000 } from './migrations/1767100000000-consents-by-time.js';
import { ErasureProgress1767400000000 } from './migrations/1767400000000-erasure-progress.js';
import { AuditAnchorKeyed1767600000000 } from './migrations/1767600000000-audit-anchor-keyed.js';

const RETENTION_USAGE = 'usage: retention-run [--dry-run] [--scheduled] [--categories a,b] [--run-id ID]';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * `retention-run [--dry-run] [--scheduled] [--categories a,b] [--run-id ID]`.
 * Anything else is refused before a run is created: a mistyped `-dry-run` or
 * a stray word must never turn a dry run into one that deletes.
 */
export function parseRetentionArgs(args: string[]): { dryRun: boolean; scheduled: boolean; categories?: string[]; runId?: string } {
  const withValue = new Set(['--categories', '--run-id']);
  const flags = new Set(['--dry-run', '--scheduled']);
  const values = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (withValue.has(a)) {
      const v = args[i + 1];
      if (!v || v.startsWith('-')) throw new Error(`${RETENTION_USAGE}: ${a} needs a value`);
      if (values.has(a)) throw new Error(`${RETENTION_USAGE}: ${a} given twice`);
      values.set(a, v);
      i++;
    } else if (!flags.has(a)) {
      throw new Error(a.startsWith('-') ? `unknown option ${a}; ${RETENTION_USAGE}` : `unexpected argument "${a}"; ${RETENTION_USAGE}`);
    }
  }
  const categories = values.get('--categories')?.split(',').map((c) => c.trim()).filter(Boolean);
  if (categories && categories.length === 0) throw new Error(`${RETENTION_USAGE}: --categories needs at least one category`);
  const runId = values.get('--run-id');
  if (runId !== undefined && !UUID.test(runId)) throw new Error(`${RETENTION_USAGE}: --run-id must be a run's id (a UUID), not "${runId}"`);
  return { dryRun: args.includes('--dry-run'), scheduled: args.includes('--scheduled'), categories, runId };
}

/** `--head <64 hex digits>`, and nothing else: a mistyped flag must not skip the check it asks for. */
function headArgument(args: string[], command: string, required: boolean): string | undefined {
  const usage = `usage: ${command} ${required ? '--head <hash>' : '[--head <hash>]'} (the head verify-audit printed, 64 hex digits)`;
  if (args.length === 0 && !required) return undefined;
  if (args.length !== 2 || args[0] !== '--head' || !/^[0-9a-f]{64}$/.test(args[1])) throw new Error(`${usage}; got: ${args.join(' ') || 'nothing'}`);
  return args[1];
}

/** The start of a trail begun before the key, which only the head kept before the upgrade vouches for. */
const describeUnkeyed = (r: { unkeyed: number; lastUnkeyed?: { seq: number; hash: string } }) =>
  r.lastUnkeyed
    ? `the first ${r.unkeyed} entries (to entry ${r.lastUnkeyed.seq}) were written before the trail was keyed: check the head kept from before the upgrade with --head`
    : 'no entry was written before the trail was keyed';

/** privacy: data-subject requests as sagas, consent records, retention policies and runs, legal holds, the register. */
export const privacyService: ServiceDefinition<PrivacyConfig> = {
  name: 'privacy',
  configSchema: privacyConfigSchema,
  database: { schema: 'privacy', entities: [], migrations: [InitialSchema1764600000000, RequestTimesInMilliseconds1765400000000, LowerCaseScopes1765500000000, Decisions1765600000000, AuditAnchor1766400000000, ...MESSAGING_MIGRATIONS, FailedExportsKeepNothing1766900000000, ConsentsByTime1767100000000, ErasureProgress1767400000000, AuditAnchorKeyed1767600000000] },
  module: (ctx) => PrivacyModule.forRoot(ctx),
  commands: {
    /**
     * Walks the audit trail's chain and names the first broken link (exit code 1 then, and for a trail not keyed);
     * `--head <hash>`: a head kept outside the database (before an upgrade, say) must be in the checked chain.
     */
    'verify-audit': async (app, args) => {
      const head = headArgument(args, 'verify-audit', false);
      const trail = app.get(AuditTrail);
      const result = await trail.verify();
      if (!result.ok) {
        process.exitCode = 1;
        return `audit trail BROKEN at entry ${result.brokenAt}: ${result.reason} (${result.entries} entries before it check out)`;
      }
      const lines = [`audit trail intact: ${result.entries} entries, head ${result.head}`];
      if (!result.keyed) {
        process.exitCode = 1;
        lines.push('NOT keyed: run key-audit --head <the head kept before the upgrade> once every privacy replica runs with PRIVACY_AUDIT_KEY');
      } else if (result.unkeyed) lines.push(describeUnkeyed(result));
      if (head) {
        const seq = await trail.seqOf(head);
        if (seq === null) process.exitCode = 1;
        lines.push(seq === null ? `the head ${head} is NOT in the checked chain` : `the head ${head} is entry ${seq}: the chain from the anchor to it is as it was then`);
      }
      return lines.join('\n');
    },
    /**
     * Once every replica runs with PRIVACY_AUDIT_KEY: checks a trail begun before the key, and that the head kept
     * before the upgrade is in it, then writes its first keyed entry, from which every entry is keyed.
     */
    'key-audit': async (app, args) => {
      const head = headArgument(args, 'key-audit', true)!;
      const result = await app.get(AuditTrail).key(head);
      if (!result.ok) {
        process.exitCode = 1;
        return `audit trail not keyed: ${result.brokenAt ? `entry ${result.brokenAt}: ` : ''}${result.reason}`;
      }
      return result.keyedFrom ? `audit trail keyed from entry ${result.keyedFrom}, head ${result.head}\n${describeUnkeyed(result)}` : `audit trail keyed already: ${result.entries} entries, head ${result.head}`;
    },
    /** The schedule's (CronJob) and the CLI's retention run; `--run-id` runs one queued by the API (a Kubernetes Job). */
    'retention-run': async (app, args) => {
      const opts = parseRetentionArgs(args);
      const runs = app.get(RetentionRunsService);
      const input = { dryRun: opts.dryRun, categories: opts.categories };
      const id = opts.runId ?? (opts.scheduled ? await runs.createWhenFree('schedule', input) : await runs.create('cli', input));
      const run = await runs.execute(id);
      if (run.status !== 'completed') process.exitCode = 1;
      const lines = [`retention run ${run.id}: ${run.status}${run.dryRun ? ' (dry run: nothing deleted)' : ''}, ${run.heldUsers} held user(s) skipped`];
      for (const r of run.results) lines.push(`  ${r.service}/${r.category}: ${r.affected}`);
      for (const e of run.errors) lines.push(`  ${e.service}: FAILED ${e.error}`);
      return lines.join('\n');
    },
  },
};
