import { ZodError } from 'zod';
import type { DataSource, EntityManager } from 'typeorm';
import { AckPolicy, DeliverPolicy, JetStreamApiCodes, jetstream, jetstreamManager, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import { headers as natsHeaders, nanos, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import {
  deadLetterSubject,
  eventEnvelopeSchema,
  eventsStreamName,
  eventSubject,
  ProblemError,
  withPrefix,
  type EventEnvelope,
} from '@ally/contracts';
import { isDatabaseUnavailable } from '@ally/persistence';
import { restoreStreams } from './jetstream.js';
import { getOrCreate } from './metrics.js';

/** Headers on a dead-lettered message. */
export const DLQ_HEADERS = {
  reason: 'Ally-Dead-Letter-Reason',
  subject: 'Ally-Original-Subject',
  seq: 'Ally-Original-Seq',
  consumer: 'Ally-Consumer',
} as const;

export type EventHandler = (em: EntityManager, event: EventEnvelope) => Promise<void>;

/** Events per transaction when several are waiting (one commit instead of many). */
const BATCH = 100;
/** Longest pause before an event is offered again (retries while our database is away go on at this pace). */
const MAX_RETRY_DELAY_MS = 30_000;
/** Events whose failures are counted at once, at most (the oldest count goes first). */
const MAX_FAULTS_KEPT = 10_000;
/** An event of a type another release consumes (a rollout): handed back this often, this far apart, then dead-lettered. */
const FOREIGN_TYPE_DELIVERIES = 120;
const FOREIGN_TYPE_DELAY_MS = 5_000;
const RUNNING_METRIC = 'ally_event_consumer_running';

/** Another service the handler asked did not answer (down, restarting: the RPC client's 503 and 504). */
const isServiceUnavailable = (err: unknown) => err instanceof ProblemError && (err.status === 503 || err.status === 504);
const retryDelay = (attempt: number) => Math.min(MAX_RETRY_DELAY_MS, 250 * 2 ** attempt);

interface Item {
  msg: JsMsg;
  event: EventEnvelope;
}

export interface EventConsumerOptions {
  /** Durable name `<service>-<purpose>`. */
  durable: string;
  /**
   * Whose inbox rows mark an event handled (default: the durable's). Consumers that took over one
   * consumer's event types share its inbox, so what it handled before is not handled again.
   */
  inbox?: string;
  /** Event types, e.g. `identity.user.registered`. */
  types: string[];
  handler: EventHandler;
  /**
   * Optional: the same effect for many events at once (set-based SQL), used
   * when several events wait. Must equal calling `handler` for each in order.
   */
  batchHandler?: (em: EntityManager, events: EventEnvelope[]) => Promise<void>;
  /**
   * Each event in a transaction of its own, never several together: for a handler that calls out (Stripe) while it
   * holds a subject's locks, so no transaction holds one subject's while it waits for another's (two replicas
   * taking them in different orders deadlock).
   */
  oneAtATime?: boolean;
  /** Called once the handler's effects are committed (to wake a worker that reads them: a wake from inside the handler comes too early). */
  afterCommit?: () => void;
  dataSource: DataSource;
  nats: NatsConnection;
  prefix: string;
  logger: Logger;
  registry: Registry;
  /** Failed attempts of the event itself (not our database being away) before it is dead-lettered. */
  maxDeliver?: number;
  ackWaitMs?: number;
  /** How long an event of a type another release of the durable consumes is held back before it is offered again (default 5 s). */
  handBackMs?: number;
}

/**
 * A durable pull consumer whose handler runs in one transaction with the
 * inbox row: a redelivered event finds its id already there and has no second
 * effect. Acks only after commit; poison messages go to `ally.dlq.<durable>`.
 * Our own database being away is waited out (nothing accepted is lost), and a
 * durable that NATS lost is created again.
 */
export class EventConsumer {
  private messages?: ConsumerMessages;
  private loop?: Promise<void>;
  private readonly queue: JsMsg[] = [];
  private draining?: Promise<void>;
  private subjects = new Set<string>();
  /** The server filter this replica asks for: a wildcard over more than our types before NATS 2.10. */
  private ownFilter: { filter_subject?: string; filter_subjects?: string[] } = {};
  /** Whether the durable's filter, when last looked at, was another release's (a rollout changing its types). */
  private othersFilter?: { at: number; answer: Promise<boolean> };
  private running = false;
  private resubscribeTimer?: NodeJS.Timeout;
  /**
   * Failed attempts of the event itself, by stream sequence. JetStream's
   * delivery count also counts our database outages, which must not use up an
   * event's attempts. In memory: a restart only grants a poison event a few more tries.
   */
  private readonly faults = new Map<number, number>();
  private readonly deadLettered: Counter;
  private readonly processed: Counter;
  private readonly consuming: Gauge;

  constructor(private readonly opts: EventConsumerOptions) {
    this.deadLettered = metric(opts.registry, 'ally_events_dead_lettered_total', 'Events moved to the dead-letter stream');
    this.processed = metric(opts.registry, 'ally_events_processed_total', 'Events handled by consumers');
    this.consuming = getOrCreate(
      opts.registry,
      RUNNING_METRIC,
      () => new Gauge({ name: RUNNING_METRIC, help: 'Whether a durable consumer is receiving events (1) or being recreated (0)', labelNames: ['consumer'], registers: [opts.registry] }),
    );
  }

  get maxDeliver(): number {
    return this.opts.maxDeliver ?? 5;
  }

  async start(): Promise<void> {
    this.running = true;
    try {
      await this.subscribe(true);
    } catch (err) {
      // Deleted under us by a replica creating it anew (its event types changed): ours follows it shortly.
      if (isConsumerNotFound(err)) return this.resubscribe(500);
      this.running = false;
      throw err;
    }
  }

  /**
   * Creates or updates the durable and consumes it. `starting`: this replica is starting (a new release may read
   * other event types); when it only follows a durable recreated under it, it takes the durable as it finds it,
   * or two releases in a rollout would take turns recreating it.
   */
  private async subscribe(starting: boolean): Promise<void> {
    const { nats, prefix, durable } = this.opts;
    const stream = eventsStreamName(prefix);
    const jsm = await jetstreamManager(nats);
    const subjects = this.opts.types.map((t) => withPrefix(prefix, eventSubject(t)));
    this.subjects = new Set(subjects);
    const filter = subjectFilter(subjects, nats.info?.version);
    this.ownFilter = filter;
    this.othersFilter = undefined;
    const changeable = {
      // Unlimited: we count an event's own failures and dead-letter it ourselves; JetStream
      // would also count redeliveries while our database is down, and then drop the event.
      max_deliver: -1,
      ack_wait: nanos(this.opts.ackWaitMs ?? 30_000),
      // Events handed back to another release wait here as pending (up to 10 minutes each): the server's default of
      // 1,000 could fill with them in a rollout and hold this replica's own types back.
      max_ack_pending: 20_000,
    };
    // Only a missing consumer is created; any other failure (e.g. a refused update) surfaces as itself.
    const existing = await jsm.consumers.info(stream, durable).catch((err) => {
      if (isConsumerNotFound(err)) return undefined;
      throw err;
    });
    const create = (start: { deliver_policy: DeliverPolicy; opt_start_seq?: number }) =>
      jsm.consumers.add(stream, { durable_name: durable, ack_policy: AckPolicy.Explicit, ...start, ...filter, ...changeable }).catch(async (err) => {
        // Another replica created it between our info and add.
        if (!/already in use|already exists/i.test(String((err as Error).message))) throw err;
        await jsm.consumers.update(stream, durable, changeable);
      });
    const refiltered = existing !== undefined && !sameFilter(existing.config, filter);
    if (refiltered && !starting) {
      this.opts.logger.warn({ durable }, 'the consumer’s event types differ from the durable’s (another release is running): consuming it as it is');
    }
    if (!existing) {
      await create({ deliver_policy: DeliverPolicy.All });
    } else if (!refiltered || !starting) {
      await jsm.consumers.update(stream, durable, changeable);
    } else if (atLeast(nats.info?.version, [2, 10, 0])) {
      await jsm.consumers.update(stream, durable, { ...changeable, ...filter });
    } else {
      // NATS before 2.10 takes an update of the filter and then delivers nothing under it: the durable is
      // created anew from where it had acknowledged (what comes twice, the inbox skips).
      this.opts.logger.info({ durable, from: existing.config.filter_subjects ?? existing.config.filter_subject, to: filter.filter_subjects ?? filter.filter_subject }, 'the consumer’s event types changed; creating it anew');
      await jsm.consumers.delete(stream, durable).catch((err) => {
        if (!isConsumerNotFound(err)) throw err;
      });
      await create({ deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: existing.ack_floor.stream_seq + 1 });
    }
    const consumer = await jetstream(nats).consumers.get(stream, durable);
    // Ends the iteration when the consumer or stream is gone (deleted, NATS restarted without
    // its store) instead of asking for it forever: we create it again (`ended`).
    const messages = await consumer.consume({ max_messages: 64, abort_on_missing_resource: true });
    if (!this.running) return void (await messages.close().catch(() => undefined));
    this.messages = messages;
    this.consuming.set({ consumer: durable }, 1);
    this.loop = (async () => {
      for await (const msg of messages) {
        this.queue.push(msg);
        this.kick();
        // Reading on makes the library pull more: while a slow handler works, they would wait here past ack_wait,
        // be delivered again (to another replica too, out of order) and pile up. A batch's worth waits, no more.
        if (this.queue.length >= BATCH) await this.draining;
      }
    })().then(
      () => this.ended(messages),
      (err) => this.ended(messages, err),
    );
  }

  /** The iteration ended: unless we are stopping, the durable (and streams) are recreated. */
  private ended(messages: ConsumerMessages, err?: unknown): void {
    if (this.messages !== messages || !this.running || this.opts.nats.isClosed()) return;
    this.consuming.set({ consumer: this.opts.durable }, 0);
    // A stream created anew numbers its messages from 1 again.
    this.faults.clear();
    this.opts.logger.error({ err: err === undefined ? undefined : String(err), durable: this.opts.durable }, 'consumer stopped receiving events; recreating it');
    this.resubscribe(500);
  }

  private resubscribe(delayMs: number): void {
    if (!this.running || this.resubscribeTimer) return;
    this.resubscribeTimer = setTimeout(() => {
      this.resubscribeTimer = undefined;
      if (!this.running) return;
      restoreStreams(this.opts.nats, { prefix: this.opts.prefix })
        .then(() => this.subscribe(false))
        .then(
          () => this.opts.logger.info({ durable: this.opts.durable }, 'consumer receiving events again'),
          (err) => {
            this.opts.logger.warn({ err: String(err), durable: this.opts.durable }, 'recreating the consumer failed; will retry');
            this.resubscribe(Math.min(delayMs * 2, MAX_RETRY_DELAY_MS));
          },
        );
    }, delayMs);
    this.resubscribeTimer.unref();
  }

  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.resubscribeTimer);
    this.resubscribeTimer = undefined;
    this.consuming.remove({ consumer: this.opts.durable });
    await this.messages?.close().catch(() => undefined);
    // The library hands over what it had buffered before it ends the iteration: handled, if a drain took it, or
    // offered again at once (to another replica) instead of after ack_wait.
    await this.loop;
    while (this.draining) await this.draining;
    for (const msg of this.queue.splice(0)) {
      try {
        msg.nak();
      } catch {
        // The connection is gone: JetStream offers it again after ack_wait.
      }
    }
  }

  /**
   * Starts handling what has arrived unless that is under way. What arrives while a drain ends (its loop saw the queue
   * empty, its promise not yet settled) is picked up by a new drain, not left until ack_wait brings it again.
   */
  private kick(): void {
    if (this.draining) return;
    let failed = false;
    this.draining = this.drain()
      // An ack or nak on a connection closed meanwhile: what was not acked comes again, to whoever consumes then.
      .catch((err) => {
        failed = true;
        this.opts.logger.warn({ err: String(err), durable: this.opts.durable }, 'handling events stopped; the rest will be delivered again');
      })
      .finally(() => {
        this.draining = undefined;
        if (!failed && this.queue.length && this.running) this.kick();
      });
  }

  /** Handles what has arrived, in order, up to BATCH events per transaction (one with `oneAtATime`). */
  private async drain(): Promise<void> {
    while (this.queue.length) {
      const taken = this.queue.splice(0, this.opts.oneAtATime ? 1 : BATCH);
      const items: Item[] = [];
      for (const msg of taken) {
        const item = await this.prepare(msg);
        if (item) items.push(item);
      }
      if (items.length > 1 && (await this.processBatch(items))) continue;
      // One at a time when the batch failed: a poison event must not hold back the others.
      for (const item of items) await this.processOne(item);
    }
  }

  /** All events in one transaction (inbox rows and effects), acked after commit; false if it rolled back. */
  private async processBatch(items: Item[]): Promise<boolean> {
    try {
      await this.opts.dataSource.transaction(async (em) => {
        const batch = this.opts.batchHandler;
        if (!batch) {
          for (const { event } of items) await this.apply(em, event);
          return;
        }
        const fresh: { event_id: string }[] = await em.query(
          `INSERT INTO inbox (event_id, consumer) SELECT unnest($1::uuid[]), $2 ON CONFLICT DO NOTHING RETURNING event_id`,
          [items.map((i) => i.event.id), this.opts.inbox ?? this.opts.durable],
        );
        const ids = new Set(fresh.map((r) => r.event_id));
        // Each id once, in arrival order (a batch may hold the same event twice).
        const events = items.map((i) => i.event).filter((e) => ids.delete(e.id));
        if (events.length) await batch(em, events);
      });
    } catch {
      return false;
    }
    for (const { msg } of items) this.ack(msg);
    this.processed.inc(items.length);
    this.committed();
    return true;
  }

  private async apply(em: EntityManager, event: EventEnvelope): Promise<void> {
    const fresh = await em.query(`INSERT INTO inbox (event_id, consumer) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING event_id`, [event.id, this.opts.inbox ?? this.opts.durable]);
    if (fresh.length === 0) return; // seen before: the effect is already committed
    await this.opts.handler(em, event);
  }

  /** The envelope of a message worth handling; the rest is acked, handed back or dead-lettered here. */
  private async prepare(msg: JsMsg): Promise<Item | null> {
    if (!this.subjects.has(msg.subject)) {
      // Our own filter had to be wider than our types (no multi-filter before NATS 2.10): not ours.
      if (!(await this.filteredByOthers())) {
        msg.ack();
        return null;
      }
      // Let in by another release's filter (a rollout adding a type to this consumer): a replica of that release
      // handles it. Handed back until one does; none for long (a rollout undone), it is dead-lettered, not lost.
      if (msg.info.deliveryCount >= FOREIGN_TYPE_DELIVERIES) {
        await this.deadLetter(msg, `no replica of ${this.opts.durable} took this event type for ${(FOREIGN_TYPE_DELIVERIES * FOREIGN_TYPE_DELAY_MS) / 60_000} minutes`);
      } else msg.nak(this.opts.handBackMs ?? FOREIGN_TYPE_DELAY_MS);
      return null;
    }
    let event: EventEnvelope;
    try {
      event = eventEnvelopeSchema.parse(msg.json()) as EventEnvelope;
    } catch (err) {
      await this.deadLetter(msg, `invalid envelope: ${String(err).slice(0, 300)}`);
      return null;
    }
    if ((this.faults.get(msg.seq) ?? 0) >= this.maxDeliver) {
      // Back only because its dead-lettering did not complete.
      await this.deadLetter(msg, `no success after ${this.maxDeliver} attempts`);
      return null;
    }
    return { msg, event };
  }

  private async processOne({ msg, event }: Item): Promise<void> {
    const { durable, logger } = this.opts;
    try {
      await this.opts.dataSource.transaction((em) => this.apply(em, event));
      this.ack(msg);
      this.processed.inc();
      this.committed();
    } catch (err) {
      // An event whose data breaks its contract will never succeed: no retries.
      if (err instanceof ZodError) return this.deadLetter(msg, `data does not match its contract: ${String(err.message).slice(0, 300)}`);
      if (isDatabaseUnavailable(err) || isServiceUnavailable(err)) {
        // Not the event's fault: offered again, at a growing pause, for as long as our database (or a service the handler asks) is away.
        logger.warn({ err: String(err), eventId: event.id, type: event.type, durable }, 'database or service unavailable; event will be retried');
        return msg.nak(retryDelay(msg.info.deliveryCount));
      }
      const faults = (this.faults.get(msg.seq) ?? 0) + 1;
      this.faults.set(msg.seq, faults);
      // An event that failed here and then succeeded on another replica is never acked here: its count would stay.
      if (this.faults.size > MAX_FAULTS_KEPT) this.faults.delete(this.faults.keys().next().value!);
      if (faults >= this.maxDeliver) return this.deadLetter(msg, String(err));
      logger.warn({ err: String(err), eventId: event.id, type: event.type, durable, attempt: faults }, 'event handler failed; will retry');
      msg.nak(retryDelay(faults));
    }
  }

  /** The afterCommit hook: what it throws is not the events' failure (they are committed and acknowledged). */
  private committed(): void {
    try {
      this.opts.afterCommit?.();
    } catch (err) {
      this.opts.logger.warn({ err: String(err), durable: this.opts.durable }, 'the consumer’s afterCommit hook failed');
    }
  }

  private ack(msg: JsMsg): void {
    msg.ack();
    this.faults.delete(msg.seq);
  }

  /**
   * Whether the durable is filtered by another release than this replica's: an exact filter of ours lets in only
   * our types, so anything else came through another's; a wildcard of ours (NATS before 2.10) lets in more, and
   * the durable's filter, looked at every few seconds, says whose it is.
   */
  private filteredByOthers(): Promise<boolean> {
    // A single filter subject that is none of our subjects is the wildcard `subjectFilter` fell back to.
    const { filter_subject: single } = this.ownFilter;
    if (single === undefined || this.subjects.has(single)) return Promise.resolve(true);
    if (this.othersFilter && Date.now() - this.othersFilter.at < FOREIGN_TYPE_DELAY_MS) return this.othersFilter.answer;
    const { nats, prefix, durable } = this.opts;
    const answer = jetstreamManager(nats)
      .then((jsm) => jsm.consumers.info(eventsStreamName(prefix), durable))
      .then((info) => !sameFilter(info.config, this.ownFilter))
      // Not known now: handed back, and asked again.
      .catch(() => true);
    this.othersFilter = { at: Date.now(), answer };
    return answer;
  }

  private async deadLetter(msg: JsMsg, reason: string): Promise<void> {
    const { durable, prefix, nats, logger } = this.opts;
    try {
      // Where it came from and why, so an operator can inspect and replay it.
      const h = natsHeaders();
      h.set(DLQ_HEADERS.reason, reason.replace(/\s+/g, ' ').slice(0, 500));
      h.set(DLQ_HEADERS.subject, msg.subject);
      h.set(DLQ_HEADERS.seq, String(msg.seq));
      h.set(DLQ_HEADERS.consumer, durable);
      const ack = await jetstream(nats).publish(withPrefix(prefix, deadLetterSubject(durable)), msg.data, {
        msgID: `${durable}:${msg.seq}`,
        headers: h,
      });
      // A second try after a lost term is deduplicated by JetStream and not counted twice.
      if (!ack.duplicate) {
        this.deadLettered.inc();
        logger.error({ durable, subject: msg.subject, seq: msg.seq, reason }, 'event dead-lettered');
      }
      // Servers before 2.10.4 ignore a `+TERM` that carries a reason (the message would stay pending and come back).
      msg.term(atLeast(nats.info?.version, [2, 10, 4]) ? reason.slice(0, 200) : undefined);
      this.faults.delete(msg.seq);
    } catch (err) {
      logger.error({ err: String(err), durable }, 'dead-lettering failed; will retry');
      msg.nak(5_000);
    }
  }
}

/** Whether a durable's filter is `filter` (the subjects in any order). */
function sameFilter(config: { filter_subject?: string; filter_subjects?: string[] }, filter: { filter_subject?: string; filter_subjects?: string[] }): boolean {
  const subjects = (f: { filter_subject?: string; filter_subjects?: string[] }) => [...(f.filter_subjects ?? []), ...(f.filter_subject ? [f.filter_subject] : [])].sort().join(' ');
  return subjects(config) === subjects(filter);
}

/**
 * The consumer's server-side filter: `filter_subject` for one type,
 * `filter_subjects` for several where the server has it (NATS >= 2.10), and
 * before that the narrowest wildcard covering all of them (the consumer skips
 * the rest itself).
 */
export function subjectFilter(subjects: string[], serverVersion?: string): { filter_subject?: string; filter_subjects?: string[] } {
  if (subjects.length === 1) return { filter_subject: subjects[0], filter_subjects: undefined };
  if (atLeast(serverVersion, [2, 10, 0])) return { filter_subjects: subjects, filter_subject: undefined };
  const tokens = subjects.map((s) => s.split('.'));
  const sameLength = tokens.every((t) => t.length === tokens[0].length);
  if (sameLength) {
    return { filter_subject: tokens[0].map((tok, i) => (tokens.every((t) => t[i] === tok) ? tok : '*')).join('.'), filter_subjects: undefined };
  }
  const common: string[] = [];
  for (let i = 0; tokens.every((t) => i < t.length - 1 && t[i] === tokens[0][i]); i++) common.push(tokens[0][i]);
  return { filter_subject: [...common, '>'].join('.'), filter_subjects: undefined };
}

function atLeast(version: string | undefined, min: [number, number, number]): boolean {
  if (!version) return false;
  const v = version.split(/[.-]/).slice(0, 3).map((n) => parseInt(n, 10) || 0);
  for (let i = 0; i < 3; i++) if (v[i] !== min[i]) return v[i] > min[i];
  return true;
}

function isConsumerNotFound(err: unknown): boolean {
  return (err as { code?: number })?.code === JetStreamApiCodes.ConsumerNotFound || /consumer not found/i.test(String((err as Error)?.message));
}

/** Durable consumers of this registry's service that are not receiving events (being recreated). */
export async function stalledConsumers(registry: Registry): Promise<string[]> {
  const gauge = registry.getSingleMetric(RUNNING_METRIC);
  if (!gauge) return [];
  return (await gauge.get()).values.filter((v) => v.value === 0).map((v) => String(v.labels.consumer));
}

function metric(registry: Registry, name: string, help: string): Counter {
  return getOrCreate(registry, name, () => new Counter({ name, help, registers: [registry] }));
}
