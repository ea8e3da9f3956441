import { Inject, Injectable, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { CHAT_ANSWERS_STOP_SUBJECT, ProblemError, withPrefix, type ChatAnswersStop as StopTarget } from '@ally/contracts';
import { LOGGER, NATS } from '@ally/platform';
import { CHAT_CONFIG, type ChatConfig } from '../config.js';

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
export class AnswersInFlight implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly running = new Set<Running>();
  private sub?: Subscription;

  constructor(
    @Inject(NATS) private readonly nats: NatsConnection,
    @Inject(CHAT_CONFIG) private readonly config: ChatConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /** A signal that aborts (with a 410 as its reason) when the answer's conversation or owner goes; `release` when the answer ends. */
  track(owner: AnswerOwner): { signal: AbortSignal; release: () => void } {
    const entry: Running = { owner, controller: new AbortController() };
    this.running.add(entry);
    return { signal: entry.controller.signal, release: () => this.running.delete(entry) };
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
