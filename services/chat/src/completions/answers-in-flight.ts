import { Inject, Injectable, type BeforeApplicationShutdown, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { ANSWER_STOPPED_FOR_RESTART, CHAT_ANSWERS_STOP_SUBJECT, ProblemError, withPrefix, type ChatAnswersStop as StopTarget } from '@ally/contracts';
import { broadcast, listenToBroadcasts } from '@ally/messaging';
import { InFlight, LOGGER, NATS } from '@ally/platform';
import { CHAT_CONFIG, type ChatConfig } from '../config.js';

/** Time left, once answers are stopped at shutdown, to save what they wrote and to end their streams. */
const SAVE_MS = 1_500;

/** Whose an answer being generated is: a conversation's (stored), or a /v1/chat/completions call's (none). */
export interface AnswerOwner {
  userId: string;
  workspace: string;
  conversationId?: string;
}

/** An answer's stop: `signal` aborts (a 410 or the restart's 503 as its reason) when it must end; `release` when it ended. */
export interface AnswerStop {
  signal: AbortSignal;
  release: () => void;
}

interface Running {
  owner: AnswerOwner;
  controller: AbortController;
  /** Workspaces of the owner erased while the answer's own was not known yet (it is being prepared). */
  erasedMeanwhile?: string[];
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
  private readonly running = new InFlight<Running>();
  private stopListening?: () => void;

  constructor(
    @Inject(NATS) private readonly nats: NatsConnection,
    @Inject(CHAT_CONFIG) private readonly config: ChatConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}


  /**
   * An answer tracked from its request's start: a stop that comes while `prepare` runs (policy, quota,
   * moderation) waits for it and ends it as it ends answers under way. The workspace is known once prepared;
   * a `prepare` that fails releases it. `ended` runs with the release of an answer that was prepared (what it
   * holds besides, such as its quota reservation, ends with it).
   */
  async trackFromStart<T>(
    owner: { userId: string; conversationId?: string },
    prepare: () => Promise<T>,
    workspaceOf: (prepared: T) => string,
    ended?: (prepared: T) => void,
  ): Promise<{ prepared: T; stop: AnswerStop }> {
    // The workspace is known once prepared (a conversation's is read with it): '' until then.
    const entry: Running = { owner: { ...owner, workspace: '' }, controller: new AbortController() };
    const untrack = this.running.add(entry);
    const stop: AnswerStop = { signal: entry.controller.signal, release: untrack };
    try {
      const prepared = await prepare();
      if (ended) {
        stop.release = () => {
          untrack();
          ended(prepared);
        };
      }
      entry.owner.workspace = workspaceOf(prepared);
      // A workspace of theirs erased while it was prepared: the history it read is gone, and so is the answer.
      if (entry.erasedMeanwhile?.includes(entry.owner.workspace)) this.abortFor(entry, { userId: owner.userId, scope: entry.owner.workspace });
      return { prepared, stop };
    } catch (err) {
      stop.release();
      throw err;
    }
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
  beforeApplicationShutdown(): Promise<void> {
    return this.running.drain({
      waitMs: this.config.SHUTDOWN_GRACE_MS - SAVE_MS - 1_000,
      settleMs: SAVE_MS,
      stop: (entry) => entry.controller.abort(new ProblemError(503, ANSWER_STOPPED_FOR_RESTART)),
      logger: this.logger,
      what: 'answers being written',
    });
  }

  /** Tells every replica, this one included, to stop the answers `target` covers. Call after the deletion committed. */
  stop(target: StopTarget): void {
    this.abortMatching(target);
    broadcast(this.nats, this.subject, target);
  }

  /** Every replica listens from its start (a one-off command builds the modules without this hook). */
  onApplicationBootstrap(): void {
    this.stopListening = listenToBroadcasts<StopTarget>(this.nats, this.subject, this.logger, 'answer stop', (target) => this.abortMatching(target));
  }

  onModuleDestroy(): void {
    this.stopListening?.();
  }

  private get subject(): string {
    return withPrefix(this.config.NATS_SUBJECT_PREFIX, CHAT_ANSWERS_STOP_SUBJECT);
  }

  private abortMatching(target: StopTarget): void {
    for (const entry of this.running) {
      if (entry.controller.signal.aborted) continue;
      if (covers(target, entry.owner)) this.abortFor(entry, target);
      else if (!('conversationId' in target) && entry.owner.userId === target.userId && entry.owner.workspace === '') {
        (entry.erasedMeanwhile ??= []).push(target.scope);
      }
    }
  }

  private abortFor(entry: Running, target: StopTarget): void {
    const what = 'conversationId' in target ? 'This conversation was deleted' : 'This account’s data was erased';
    entry.controller.abort(new ProblemError(410, `${what} while the answer was written`));
  }
}

function covers(target: StopTarget, owner: AnswerOwner): boolean {
  if ('conversationId' in target) return typeof target.conversationId === 'string' && owner.conversationId === target.conversationId;
  return owner.userId === target.userId && (target.scope === 'all' || target.scope === owner.workspace);
}
