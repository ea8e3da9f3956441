import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { ChatEvents, ERASED_USER, type EventEnvelope } from '@ally/contracts';
import { lockSubjects } from '@ally/persistence';
import { EventConsumers } from '@ally/platform';
import { isPseudonym, Pseudonyms, SCOPED_ERASURE_GRACE_MS } from '../common/erased-subjects.js';
import { workspaceKey } from '../common/workspace-key.js';
import { QuotaAlerts } from '../quota/quota-alerts.service.js';

/**
 * `chat.completion.recorded` → one ledger entry per message id. The inbox
 * makes a redelivery harmless, and the message id as primary key makes even
 * a second publication of the same completion harmless.
 */
@Injectable()
export class LedgerConsumer {
  constructor(
    consumers: EventConsumers,
    private readonly alerts: QuotaAlerts,
    private readonly pseudonyms: Pseudonyms,
  ) {
    consumers.register({
      durable: 'billing-ledger',
      types: ['chat.completion.recorded'],
      handler: (em, event) => this.recordMany(em, [event]),
      batchHandler: (em, events) => this.recordMany(em, events),
    });
  }

  /** One multi-row insert for a batch; the message id as key keeps a repeated completion out. */
  async recordMany(em: EntityManager, events: EventEnvelope[]): Promise<void> {
    const parsed = events.map((event) => ({ event, d: ChatEvents['chat.completion.recorded'].parse(event.data) }));
    // Usage that arrives after its user's account was erased here (the consumer lagged, the event came again) is
    // booked as the erasure left the rest: the amount under the pseudonym, nobody named.
    const aliases = new Map([...new Set(parsed.map(({ d }) => d.userId))].map((userId) => [userId, this.pseudonyms.of(userId)]));
    // Each subject's lock, shared, as an erasure takes it exclusively: one running now is waited for (then its mark is
    // read below), and one after this batch finds its rows to rename; none books a row in between under their name.
    await lockSubjects(em, [...aliases.keys()], 'shared');
    const erased = new Set<string>(
      (await em.query(`SELECT alias FROM erased_subjects WHERE alias = ANY($1::text[])`, [[...aliases.values()]])).map((r: { alias: string }) => r.alias),
    );
    // So is usage of one workspace they were erased from, from before that erasure (or stopped by it).
    const erasedFrom = new Map<string, number>(
      (await em.query(`SELECT alias, workspace, erased_at FROM erased_workspaces WHERE alias = ANY($1::text[])`, [[...aliases.values()]])).map(
        (r: { alias: string; workspace: string; erased_at: Date }) => [`${r.alias}|${r.workspace}`, new Date(r.erased_at).getTime()],
      ),
    );
    const before = (alias: string, workspace: string, at: string) => Date.parse(at) <= (erasedFrom.get(`${alias}|${workspace}`) ?? -Infinity) + SCOPED_ERASURE_GRACE_MS;
    const rows = parsed.map(({ event, d }) => {
      const alias = aliases.get(d.userId)!;
      const gone = erased.has(alias) || before(alias, d.workspace, event.occurredAt);
      return {
        d: gone ? { ...d, userId: ERASED_USER } : d,
        key: gone && d.workspace === 'private' ? alias : workspaceKey(d.workspace, d.userId),
        period: event.occurredAt.slice(0, 7),
        at: event.occurredAt,
      };
    });
    const inserted: { workspace: string; period: string }[] = await em.query(
      // A row's time is the usage's, never later than now, nor before its month (chat's clock a little ahead of ours at
      // the month's turn: then ahead of our now by that much, which Stripe's meter takes up to 5 minutes): the meter
      // and the reconciliation count it in the month its period names, also when the event arrives after the month turned.
      `INSERT INTO ledger (message_id, workspace, user_id, model, deployment, prompt_tokens, completion_tokens, tokens, cost, period, created_at)
       SELECT m, w, u, mo, d, p, c, t, co, pe, greatest(least(at, now()), (pe || '-01')::timestamp AT TIME ZONE 'UTC')
         FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::text[], $6::int[], $7::int[], $8::int[], $9::numeric[], $10::text[], $11::timestamptz[])
           AS x(m, w, u, mo, d, p, c, t, co, pe, at)
       ON CONFLICT (message_id) DO NOTHING RETURNING workspace, period`,
      [
        rows.map((r) => r.d.messageId),
        rows.map((r) => r.key),
        rows.map((r) => r.d.userId),
        rows.map((r) => r.d.model),
        rows.map((r) => r.d.deployment),
        rows.map((r) => r.d.promptTokens),
        rows.map((r) => r.d.completionTokens),
        rows.map((r) => r.d.promptTokens + r.d.completionTokens),
        rows.map((r) => r.d.cost),
        rows.map((r) => r.period),
        rows.map((r) => r.at),
      ],
    );
    // An erased subject's private workspace has nobody to alert.
    const touched = new Map(inserted.filter((r) => !isPseudonym(r.workspace)).map((r) => [`${r.workspace}|${r.period}`, { workspace: r.workspace, period: r.period }]));
    // In one order on every replica: each takes its workspace's alert lock.
    for (const { workspace, period } of [...touched.values()].sort((a, b) => a.workspace.localeCompare(b.workspace))) await this.alerts.afterUsage(em, workspace, period);
  }

}
