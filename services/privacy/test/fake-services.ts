import type { NatsConnection, Msg, Subscription } from '@nats-io/transport-node';
import type { Problem } from '@ally/contracts';

export type FakeAnswer = unknown | { problem: Problem } | 'silence';

export interface FakeCall {
  subject: string;
  service: string;
  operation: string;
  input: any;
  at: number;
}

/**
 * Stand-ins for identity, chat, billing and notify on the wire: they answer
 * `ally.rpc.<svc>.privacy.*` the way Nest's NATS transport does, with
 * whatever the test says (an answer, a problem, or silence for a timeout).
 */
export class FakeServices {
  readonly calls: FakeCall[] = [];
  private readonly subs: Subscription[] = [];
  private handlers = new Map<string, (input: any, call: FakeCall) => FakeAnswer | Promise<FakeAnswer>>();

  constructor(
    private readonly nc: NatsConnection,
    private readonly prefix: string,
  ) {}

  on(service: string, operation: string, handler: (input: any, call: FakeCall) => FakeAnswer | Promise<FakeAnswer>): this {
    this.handlers.set(`${service}.${operation}`, handler);
    return this;
  }

  /** The handler `on` set for an operation, if any (to put it back after a test of its own). */
  handlerOf(service: string, operation: string): ((input: any, call: FakeCall) => FakeAnswer | Promise<FakeAnswer>) | undefined {
    return this.handlers.get(`${service}.${operation}`);
  }

  off(service: string, operation: string): this {
    this.handlers.delete(`${service}.${operation}`);
    return this;
  }

  listen(services: string[], operations = ['export', 'erase', 'retention', 'subject', 'handled']): this {
    for (const service of services) {
      for (const operation of operations) {
        const subject = `${this.prefix}.ally.rpc.${service}.privacy.${operation}`;
        this.subs.push(this.nc.subscribe(subject, { queue: service, callback: (err, msg) => {
          if (!err) void this.answer(service, operation, msg);
        } }));
      }
    }
    return this;
  }

  callsTo(service: string, operation: string): FakeCall[] {
    return this.calls.filter((c) => c.service === service && c.operation === operation);
  }

  close(): void {
    for (const s of this.subs) s.unsubscribe();
  }

  private async answer(service: string, operation: string, msg: Msg): Promise<void> {
    const packet = msg.json<{ id: string; data: { input: any } }>();
    const call: FakeCall = { subject: msg.subject, service, operation, input: packet.data.input, at: Date.now() };
    this.calls.push(call);
    const handler = this.handlers.get(`${service}.${operation}`);
    const answer = handler ? await handler(packet.data.input, call) : defaultAnswer(service, operation, packet.data.input);
    if (answer === 'silence') return;
    const body = answer && typeof answer === 'object' && 'problem' in (answer as object) ? { id: packet.id, err: (answer as { problem: Problem }).problem, isDisposed: true } : { id: packet.id, response: answer, isDisposed: true };
    msg.respond(JSON.stringify(body));
  }
}

function defaultAnswer(service: string, operation: string, input: any): unknown {
  if (operation === 'subject') return { exists: true };
  if (operation === 'export') return { service, categories: {} };
  if (operation === 'erase') return { service, affected: {} };
  if (operation === 'handled') return { service, handled: true, consumers: 1 };
  return { service, results: input.categories.map((c: { category: string }) => ({ category: c.category, affected: 0 })) };
}
