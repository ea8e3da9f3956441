import { v7 as uuidv7 } from 'uuid';
import { z } from 'zod';

/** The JSON every domain event travels in (ARCHITECTURE.md, "Messaging"). */
export const eventEnvelopeSchema = z.object({
  id: z.uuid(),
  type: z.string().min(1),
  version: z.number().int().positive(),
  occurredAt: z.iso.datetime(),
  source: z.string().min(1),
  correlationId: z.string().min(1),
  actor: z.string().optional(),
  subject: z.object({ userId: z.uuid().optional(), orgId: z.uuid().optional() }),
  data: z.unknown(),
});

export type EventEnvelope<T = unknown> = Omit<z.infer<typeof eventEnvelopeSchema>, 'data'> & { data: T };

export interface EnvelopeInput<T> {
  type: string;
  version?: number;
  source: string;
  correlationId?: string;
  actor?: string;
  subject?: { userId?: string; orgId?: string };
  data: T;
}

export function createEnvelope<T>(input: EnvelopeInput<T>): EventEnvelope<T> {
  const id = uuidv7();
  return {
    id,
    type: input.type,
    version: input.version ?? 1,
    occurredAt: new Date().toISOString(),
    source: input.source,
    correlationId: input.correlationId ?? id,
    actor: input.actor,
    subject: input.subject ?? {},
    data: input.data,
  };
}
