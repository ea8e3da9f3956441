import { Inject, Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { randomUUID } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { isProblem, ProblemError, type Actor, type ChatMessage, type StreamFrame } from '@ally/contracts';
import type { StreamPublisher } from '@ally/messaging';
import { isForeignKeyViolation, queryPrepared } from '@ally/persistence';
import { LOGGER, NATS, toProblem } from '@ally/platform';
import { openedAssistantText } from '../assistants/assistant-text.js';
import { RouterService } from '../catalog/router.service.js';
import { AnswersInFlight, type AnswerStop } from '../completions/answers-in-flight.js';
import { CompletionService, type CompletionResult, type Plan, type StreamProgress } from '../completions/completion.service.js';
import { framesTo, listenForCancel, openFrameStream } from '../completions/frame-stream.js';
import { CHAT_CONFIG, type ChatConfig } from '../config.js';
import type { PromptMessage } from '../content-filter/content-filter.service.js';
import { ContentCipher, type UserKey } from '../crypto/content-cipher.service.js';
import { PolicyService } from '../policy/policy.service.js';
import { HISTORY_MESSAGES, historyBytes, SAVE_SQL, TURN_SQL, type TurnRow } from './turn-statements.js';

interface Turn {
  conversationId: string;
  key: UserKey;
  content: string;
  plan: Plan;
}

/** A user message and the assistant's answer, stored encrypted with the residency receipt. */
@Injectable()
export class MessagesService {
  constructor(
    private readonly ds: DataSource,
    private readonly policies: PolicyService,
    private readonly completions: CompletionService,
    private readonly router: RouterService,
    private readonly cipher: ContentCipher,
    private readonly inFlight: AnswersInFlight,
    @Inject(NATS) private readonly nats: NatsConnection,
    @Inject(CHAT_CONFIG) private readonly config: ChatConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /** Not streamed; `cancel` names where the gateway says its client went away (then the provider call is aborted and nothing saved). */
  async post(actor: Actor, input: { conversationId: string; content: string; model?: string; cancel?: string }): Promise<ChatMessage> {
    const cancellation = listenForCancel(this.nats, this.config, input.cancel);
    let stop: AnswerStop | undefined;
    try {
      const started = await this.trackFromStart(actor, input);
      stop = started.stop;
      const turn = started.prepared;
      const signal = cancellation ? AbortSignal.any([cancellation.signal, stop.signal]) : stop.signal;
      const result = await this.completions.complete(turn.plan, signal);
      return await this.saveOrBill(turn, result.text, result, 'complete');
    } finally {
      cancellation?.close();
      stop?.release();
    }
  }

  /**
   * Checks everything that can fail fast (ownership, policy, quota, content
   * filter) before answering the RPC, then streams frames to the gateway.
   */
  async stream(actor: Actor, input: { conversationId: string; content: string; model?: string; stream: { subject: string; window: number } }): Promise<{ accepted: true }> {
    const { prepared: turn, stop } = await this.trackFromStart(actor, input);
    const publisher = openFrameStream(this.nats, this.config, input.stream);
    void this.run(turn, publisher, stop);
    return { accepted: true };
  }

  private async run(turn: Turn, publisher: StreamPublisher<StreamFrame>, stop: AnswerStop): Promise<void> {
    try {
      await this.answer(turn, publisher, AbortSignal.any([publisher.abort.signal, stop.signal]));
    } finally {
      stop.release();
    }
  }

  /**
   * Stopped by the conversation's deletion or its owner's erasure (wherever that ran), by the gateway's cancel, or by
   * this replica stopping: tracked from the request's start, so a stop that comes while the turn is still prepared
   * (policy, quota, moderation) waits for it and ends it as it ends answers under way. The workspace is known once prepared.
   */
  private trackFromStart(actor: Actor, input: { conversationId: string; content: string; model?: string }) {
    return this.inFlight.trackFromStart(
      { userId: actor.userId, conversationId: input.conversationId },
      () => this.prepare(actor, input),
      (turn) => turn.plan.policy.workspace,
      // A turn that ended without usage recorded frees what its prompt reserved of the quota.
      (turn) => this.completions.releaseQuota(turn.plan),
    );
  }

  private async answer(turn: Turn, publisher: StreamPublisher<StreamFrame>, signal: AbortSignal): Promise<void> {
    const progress: StreamProgress = { text: '' };
    let result: CompletionResult;
    try {
      result = await this.completions.stream(turn.plan, framesTo(publisher), signal, progress);
    } catch (err) {
      // The user left, or the provider stopped mid-answer: keep what they saw, marked as aborted, and bill what was generated.
      const partial = this.completions.partial(turn.plan, progress);
      if (publisher.unread) {
        await this.completions.billUnread(turn.plan, progress);
      } else if (partial) {
        await this.saveOrBill(turn, partial.text, partial, 'aborted').catch((e) =>
          e instanceof ProblemError && e.status === 410 ? undefined : this.logger.error({ err: String(e) }, 'saving an aborted answer failed'),
        );
      }
      if (publisher.cancelled) {
        this.logger.info({ conversationId: turn.conversationId }, 'stream cancelled by the client; provider call aborted');
        publisher.close();
        return;
      }
      return publisher.finish({ type: 'error', problem: this.problemOf(err) });
    }
    // The whole answer arrived: saved (or, the conversation gone meanwhile, only billed) once, whatever the save says.
    try {
      const message = await this.saveOrBill(turn, result.text, result, 'complete');
      publisher.finish({ type: 'done', messageId: message.id, model: turn.plan.model, usage: message.usage!, residency: message.residency! });
    } catch (err) {
      publisher.finish({ type: 'error', problem: this.problemOf(err) });
    }
  }

  private problemOf(err: unknown) {
    return isProblem(err) ? err : err instanceof ProblemError ? err.toProblem() : toProblem(err, this.logger);
  }

  /**
   * One query reads what a turn needs: the conversation (only the caller's),
   * its history, the user's wrapped data key, the routing policy's replica rows
   * and the assistant. Refusals rank as before: ownership, then policy.
   */
  private async prepare(actor: Actor, input: { conversationId: string; content: string; model?: string }): Promise<Turn> {
    const [row] = await queryPrepared<TurnRow>(this.ds, 'chat_turn', TURN_SQL, [
      input.conversationId,
      actor.userId,
      this.cipher.erasureMarks(actor.userId),
      historyBytes(this.router.largestContextWindow),
      HISTORY_MESSAGES,
    ]);
    if (!row || (actor.apiKeyWorkspace && actor.apiKeyWorkspace !== row.workspace)) throw new ProblemError(404, 'Conversation not found');
    const policy = await this.policies.fromRows(actor, row.workspace, row);
    const key = await this.cipher.userKey(this.ds.manager, actor.userId, row.wrapped, row.id);
    const messages: PromptMessage[] = [];
    if (row.assistant) {
      // A private assistant is the caller's own (TURN_SQL), sealed under the key just opened.
      const { sealed, instructions } = row.assistant;
      messages.push({ role: 'system', content: sealed ? openedAssistantText(key.open(Buffer.from(sealed, 'base64'))).instructions : (instructions ?? '') });
    }
    for (const m of row.history) messages.push({ role: m.role, content: key.open(Buffer.from(m.content, 'base64')) });
    messages.push({ role: 'user', content: input.content });
    // An assistant's default this user may not use (their own EU restriction, a policy changed since) gives way to the default model.
    const assistantModel = row.assistant?.model && this.router.allows(row.assistant.model, policy) ? row.assistant.model : undefined;
    const plan = await this.completions.prepare(actor, row.workspace, input.model ?? assistantModel, messages, {}, policy);
    return { conversationId: row.id, key, content: input.content, plan };
  }

  /**
   * `save`, and when the conversation went meanwhile (deleted, or its owner
   * erased: a 410) the usage event alone: the provider generated the tokens,
   * so the organisation's books get them (naming nobody after an erasure).
   */
  private async saveOrBill(turn: Turn, text: string, result: CompletionResult, status: 'complete' | 'aborted'): Promise<ChatMessage> {
    const answerId = randomUUID();
    try {
      return await this.save(turn, answerId, text, result, status);
    } catch (err) {
      if (err instanceof ProblemError && err.status === 410) {
        await this.completions.recordUsage(answerId, turn.plan, result);
      } else {
        // Not saved (a failover, a lost connection; or saved and the answer lost: the same id is counted once):
        // the tokens are billed all the same.
        await this.completions.recordUsage(answerId, turn.plan, result).catch((e) => this.logger.error({ err: String(e) }, 'the usage of an answer that could not be saved was not recorded'));
      }
      throw err;
    }
  }

  /**
   * Question, answer, the conversation's time and the usage event in one
   * statement (atomic on its own). Nothing is written when the user's data key
   * was shredded meanwhile: an erasure won the race.
   */
  private async save(turn: Turn, answerId: string, text: string, result: CompletionResult, status: 'complete' | 'aborted'): Promise<ChatMessage> {
    const erased = () => new ProblemError(410, 'This conversation was erased while the answer was written');
    const [{ saved, answeredAt }] = await queryPrepared<{ saved: number; answeredAt: Date | null }>(this.ds, 'chat_save_turn', SAVE_SQL, [
      randomUUID(),
      answerId,
      turn.conversationId,
      turn.plan.actor.userId,
      turn.key.seal(turn.content),
      new Date(),
      turn.key.seal(text),
      turn.plan.model,
      result.usage.promptTokens,
      result.usage.completionTokens,
      JSON.stringify(result.residency),
      status,
      ...this.completions.usageRow(answerId, turn.plan, result),
    ]).catch((err) => {
      // The conversation went in the same moment (an erasure or a delete committing meanwhile).
      throw isForeignKeyViolation(err) ? erased() : err;
    });
    if (!saved || !answeredAt) throw erased();
    this.completions.spent(turn.plan, result);
    return {
      id: answerId,
      role: 'assistant',
      content: text,
      createdAt: answeredAt.toISOString(),
      model: turn.plan.model,
      usage: result.usage,
      residency: result.residency,
      ...(status !== 'complete' ? { status } : {}),
    };
  }
}
