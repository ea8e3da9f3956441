import type { EntityManager } from 'typeorm';
import type { z } from 'zod';
import { createEnvelope, eventSubject, type EventEnvelope } from '@ally/contracts';

type EventMap = Record<string, z.ZodType>;

export interface AppendOptions {
  correlationId?: string;
  actor?: string;
  subject?: { userId?: string; orgId?: string };
}

/**
 * Writes events into the service's outbox inside the caller's transaction, so
 * the state change and its events commit or roll back together. Payloads are
 * validated against the contract before they are stored.
 */
export class Outbox<M extends EventMap> {
  constructor(
    private readonly source: string,
    private readonly events: M,
  ) {}

  async append<T extends keyof M & string>(
    em: EntityManager,
    type: T,
    data: z.input<M[T]>,
    opts: AppendOptions = {},
  ): Promise<EventEnvelope<z.infer<M[T]>>> {
    const { envelope, values } = this.row(type, data, opts);
    await em.query(`INSERT INTO outbox (${OUTBOX_COLUMNS}) VALUES ($1, $2, $3, $4)`, values);
    return envelope;
  }

  /**
   * The validated event as the values of an outbox row (`OUTBOX_COLUMNS`), for
   * a caller that writes it in the same statement as its own change.
   */
  row<T extends keyof M & string>(type: T, data: z.input<M[T]>, opts: AppendOptions = {}): { envelope: EventEnvelope<z.infer<M[T]>>; values: [string, string, string, string] } {
    const payload = this.events[type].parse(data) as z.infer<M[T]>;
    const envelope = createEnvelope({ type, source: this.source, data: payload, ...opts });
    return { envelope, values: [envelope.id, eventSubject(type), type, JSON.stringify(envelope)] };
  }
}

/** The columns `Outbox.row` gives values for, in order. */
export const OUTBOX_COLUMNS = 'id, subject, type, payload';

type Queryable = Pick<EntityManager, 'query'>;

/**
 * A subject's erasure in a service's outbox: published events that name them
 * (`name`: their id, or an address an event carries instead) go; the stream
 * keeps its own copies at most 7 days. With `unpublishedAs`, events not yet
 * out keep their place for their consumers and carry that instead; with
 * `unpublished: 'drop'`, they are not sent at all (they were only about the
 * subject), or only those of `onlyTypes` when it is given; either is done
 * first, so one the relay sends meanwhile goes too.
 * The name is matched as it is (strpos), never as a LIKE pattern, where an
 * address's `_` is a wildcard.
 */
export async function forgetSubjectInOutbox(
  db: Queryable,
  name: string,
  opts: { unpublishedAs?: string; unpublished?: 'drop'; onlyTypes?: readonly string[] } = {},
): Promise<void> {
  if (opts.unpublishedAs) {
    await db.query(`UPDATE outbox SET payload = replace(payload::text, $1, $2)::jsonb WHERE sent_at IS NULL AND strpos(payload::text, $1) > 0`, [name, opts.unpublishedAs]);
  } else if (opts.unpublished === 'drop') {
    await db.query(`DELETE FROM outbox WHERE sent_at IS NULL AND strpos(payload::text, $1) > 0 AND ($2::text[] IS NULL OR type = ANY($2::text[]))`, [name, opts.onlyTypes ?? null]);
  }
  await db.query(`DELETE FROM outbox WHERE sent_at IS NOT NULL AND strpos(payload::text, $1) > 0`, [name]);
}
