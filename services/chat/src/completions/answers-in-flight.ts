import { Inject, Injectable, type BeforeApplicationShutdown, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import { setTimeout } from 'node:timers/promises';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { CHAT_ANSWERS_STOP_SUBJECT, ProblemError, withPrefix, type ChatAnswersStop as StopTarget } from '@ally/contracts';
import { LOGGER, NATS } from '@ally/platform';
import { CHAT_CONFIG, type ChatConfig } from '../config.js';

/** Time left, once answers are stopped at shutdown, to save what they wrote and to end their streams. */
const SAVE_MS = 1_500;

/** Whose an answer being generated is: a conversation's (stored), or a /v1/chat/completions call's (none). */
export interface AnswerOwner {
  userId: string;
  workspace: string;
  conversationId?: string;
}

interface Running {
  owner: AnswerOwner;
  controller: AbortController;
}

/**
 * The answers this replica is generating, so that deleting a conversation or
 * erasing its owner stops the provider call too, wherever the answer runs:
 * the person's words stop being processed the moment they are gone, and the
 * tokens generated so far are all that is billed. The stop is a core NATS
 * broadcast; a replica that misses it finishes the answer, whose save then
 * finds the conversation gone (410), as before this existed.
 */
@Injectable()
export class AnswersInFlight implements OnApplicationBootstrap, OnModuleDestroy, BeforeApplicationShutdown {
  private readonly running = new Set<Running>();
  private sub?: Subscription;
  /** Called when the last answer ends (a shutdown waits for it). */
  private idle?: () => void;

  constructor(
    @Inject(NATS) private readonly nats: NatsConnection,
    @Inject(CHAT_CONFIG) private readonly config: ChatConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /** A signal that aborts (with a 410 as its reason) when the answer's conversation or owner goes; `release` when the answer ends. */
  track(owner: AnswerOwner): { signal: AbortSignal; release: () => void } {
    const entry: Running = { owner, controller: new AbortController() };
    this.running.add(entry);
    return {
      signal: entry.controller.signal,
      release: () => {
        this.running.delete(entry);
        if (this.running.size === 0) this.idle?.();
      },
    };
  }

  /**
   * A replica that is told to stop (a rollout, a scale-down) has taken its
   * last request by now; the answers it is writing finish first, within
   * SHUTDOWN_GRACE_MS (less time to save them), and those that would not are
   * stopped with a 503: the stream ends with an error frame, the part written
   * is kept as an aborted message and billed, instead of the frames and the
   * reply being cut off with the connection (the client waited for a timeout,
   * and nothing was saved or billed).
   */
  async beforeApplicationShutdown(): Promise<void> {
    if (this.running.size === 0) return;
    this.logger.info({ answers: this.running.size }, 'waiting for the answers being written before stopping');
    const idle = new Promise<void>((resolve) => (this.idle = resolve));
    await Promise.race([idle, setTimeout(Math.max(0, this.config.SHUTDOWN_GRACE_MS - SAVE_MS - 1_000))]);
    if (this.running.size === 0) return;
    this.logger.warn({ answers: this.running.size }, 'stopping the answers still being written: the replica is shutting down');
    for (const entry of this.running) entry.controller.abort(new ProblemError(503, 'The answer was stopped because the service restarted; please send the message again'));
    await Promise.race([idle, setTimeout(SAVE_MS)]);
  }

  /** Tells every replica, this one included, to stop the answers `target` covers. Call after the deletion committed. */
  stop(target: StopTarget): void {
    this.abortMatching(target);
    if (!this.nats.isClosed()) this.nats.publish(this.subject, JSON.stringify(target));
  }

  /** Every replica listens from its start (a one-off command builds the modules without this hook). */
  onApplicationBootstrap(): void {
    this.sub = this.nats.subscribe(this.subject, {
      callback: (err, msg) => {
        if (err) return;
        try {
          this.abortMatching(msg.json<StopTarget>());
        } catch {
          this.logger.warn('ignored a malformed answer stop message');
        }
      },
    });
  }

  onModuleDestroy(): void {
    if (this.sub && !this.sub.isClosed()) this.sub.unsubscribe();
  }

  private get subject(): string {
    return withPrefix(this.config.NATS_SUBJECT_PREFIX, CHAT_ANSWERS_STOP_SUBJECT);
  }

  private abortMatching(target: StopTarget): void {
    for (const entry of this.running) {
      if (!covers(target, entry.owner) || entry.controller.signal.aborted) continue;
      const what = 'conversationId' in target ? 'This conversation was deleted' : 'This account’s data was erased';
      entry.controller.abort(new ProblemError(410, `${what} while the answer was written`));
    }
  }
}

function covers(target: StopTarget, owner: AnswerOwner): boolean {
  if ('conversationId' in target) return typeof target.conversationId === 'string' && owner.conversationId === target.conversationId;
  return owner.userId === target.userId && (target.scope === 'all' || target.scope === owner.workspace);
}
