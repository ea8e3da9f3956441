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
    const payload = this.events[type].parse(data) as z.infer<M[T]>;
    const envelope = createEnvelope({ type, source: this.source, data: payload, ...opts });
    await em.query(`INSERT INTO outbox (id, subject, type, payload) VALUES ($1, $2, $3, $4)`, [
      envelope.id,
      eventSubject(type),
      type,
      JSON.stringify(envelope),
    ]);
    return envelope;
  }
}
