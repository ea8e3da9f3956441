import { Inject, Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { randomUUID } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { countTokens } from 'gpt-tokenizer';
import { isProblem, ProblemError, withPrefix, type Actor, type ChatMessage, type StreamFrame } from '@ally/contracts';
import { StreamPublisher } from '@ally/messaging';
import { LOGGER, NATS, toProblem } from '@ally/platform';
import { AssistantsService } from '../assistants/assistants.service.js';
import type { Deployment } from '../catalog/model-catalog.js';
import { CompletionService, type CompletionResult, type Plan } from '../completions/completion.service.js';
import { CHAT_CONFIG, type ChatConfig } from '../config.js';
import type { PromptMessage } from '../content-filter/content-filter.service.js';
import { ContentCipher } from '../crypto/content-cipher.service.js';
import { ConversationsService } from './conversations.service.js';
import { MessageEntity } from './message.entity.js';
import { ConversationEntity } from './conversation.entity.js';

const HEARTBEAT_MS = 10_000;

interface Turn {
  conversation: ConversationEntity;
  content: string;
  plan: Plan;
}

/** A user message and the assistant's answer, stored encrypted with the residency receipt. */
@Injectable()
export class MessagesService {
  constructor(
    private readonly ds: DataSource,
    private readonly conversations: ConversationsService,
    private readonly assistants: AssistantsService,
    private readonly completions: CompletionService,
    private readonly cipher: ContentCipher,
    @Inject(NATS) private readonly nats: NatsConnection,
    @Inject(CHAT_CONFIG) private readonly config: ChatConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async post(actor: Actor, input: { conversationId: string; content: string; model?: string }): Promise<ChatMessage> {
    const turn = await this.prepare(actor, input);
    const result = await this.completions.complete(turn.plan);
    return this.save(turn, result.text, result, 'complete');
  }

  /**
   * Checks everything that can fail fast (ownership, policy, quota, content
   * filter) before answering the RPC, then streams frames to the gateway.
   */
  async stream(actor: Actor, input: { conversationId: string; content: string; model?: string; stream: { subject: string; window: number } }): Promise<{ accepted: true }> {
    const turn = await this.prepare(actor, input);
    const publisher = new StreamPublisher<StreamFrame>(this.nats, withPrefix(this.config.NATS_SUBJECT_PREFIX, input.stream.subject), input.stream.window, this.config.STREAM_ACK_TIMEOUT_MS);
    void this.run(turn, publisher);
    return { accepted: true };
  }

  private async run(turn: Turn, publisher: StreamPublisher<StreamFrame>): Promise<void> {
    let text = '';
    let lastSent = Date.now();
    const progress: { deployment?: Deployment } = {};
    const heartbeat = setInterval(() => {
      if (Date.now() - lastSent >= HEARTBEAT_MS) void publisher.send({ type: 'heartbeat' }).catch(() => undefined);
    }, HEARTBEAT_MS);
    try {
      const result = await this.completions.stream(
        turn.plan,
        {
          start: (residency) => publisher.send({ type: 'start', residency }),
          delta: async (delta) => {
            text += delta;
            await publisher.send({ type: 'delta', text: delta });
            lastSent = Date.now();
          },
        },
        publisher.abort.signal,
        progress,
      );
      const message = await this.save(turn, result.text, result, 'complete');
      publisher.finish({ type: 'done', messageId: message.id, model: turn.plan.model, usage: message.usage!, residency: message.residency! });
    } catch (err) {
      if (publisher.cancelled) {
        // The user left: keep what they saw, marked as aborted, and bill what was generated.
        this.logger.info({ conversationId: turn.conversation.id }, 'stream cancelled by the client; provider call aborted');
        if (text && progress.deployment) await this.saveAborted(turn, text, progress.deployment).catch((e) => this.logger.error({ err: String(e) }, 'saving an aborted answer failed'));
        publisher.close();
        return;
      }
      const problem = isProblem(err) ? err : err instanceof ProblemError ? err.toProblem() : toProblem(err, this.logger);
      publisher.finish({ type: 'error', problem });
    } finally {
      clearInterval(heartbeat);
    }
  }

  private async prepare(actor: Actor, input: { conversationId: string; content: string; model?: string }): Promise<Turn> {
    // Independent lookups run side by side; their results are checked in the original
    // order (ownership first: someone else's history is read but never decrypted or shown).
    const pendingHistory = this.ds.getRepository(MessageEntity).find({ where: { conversationId: input.conversationId, status: 'complete' }, order: { createdAt: 'ASC', id: 'ASC' } });
    pendingHistory.catch(() => undefined); // awaited below, after the ownership check
    const conversation = await this.conversations.owned(actor, input.conversationId);
    const history = await pendingHistory;
    const policy = this.completions.policyFor(actor, conversation.workspace);
    policy.catch(() => undefined); // awaited in completions.prepare, after the history
    const [assistant, contents] = await Promise.all([
      conversation.assistantId ? this.assistants.usable(actor, conversation.workspace, conversation.assistantId).catch(() => null) : null,
      this.cipher.decryptMany(this.ds.manager, history.map((m) => ({ userId: m.userId, sealed: m.contentEnc }))),
    ]);
    const messages: PromptMessage[] = [];
    if (assistant) messages.push({ role: 'system', content: assistant.instructions });
    history.forEach((m, i) => messages.push({ role: m.role, content: contents[i] }));
    messages.push({ role: 'user', content: input.content });
    const plan = await this.completions.prepare(actor, conversation.workspace, input.model ?? assistant?.model ?? undefined, messages, {}, policy);
    return { conversation, content: input.content, plan };
  }

  private async save(turn: Turn, text: string, result: CompletionResult, status: 'complete' | 'aborted'): Promise<ChatMessage> {
    const userId = turn.plan.actor.userId;
    return this.ds.transaction(async (em) => {
      const now = Date.now();
      const [questionEnc, answerEnc] = await this.cipher.encryptMany(em, userId, [turn.content, text]);
      const question = em.getRepository(MessageEntity).create({
        id: randomUUID(),
        conversationId: turn.conversation.id,
        userId,
        role: 'user',
        contentEnc: questionEnc,
        model: null,
        promptTokens: null,
        completionTokens: null,
        residency: null,
        status: 'complete',
        createdAt: new Date(now),
      });
      const answer = em.getRepository(MessageEntity).create({
        id: randomUUID(),
        conversationId: turn.conversation.id,
        userId,
        role: 'assistant',
        contentEnc: answerEnc,
        model: turn.plan.model,
        promptTokens: result.usage.promptTokens,
        completionTokens: result.usage.completionTokens,
        residency: result.residency,
        status,
        // One millisecond later, so the order survives equal clocks.
        createdAt: new Date(now + 1),
      });
      await em.getRepository(MessageEntity).insert([question, answer]);
      await em.getRepository(ConversationEntity).update({ id: turn.conversation.id }, { updatedAt: new Date(now + 1) });
      await this.completions.recordUsage(em, answer.id, turn.plan, result);
      // The answer as decrypting it would give (UTF-8 round trip), without looking the key up again.
      return this.conversations.toMessage(em, answer, Buffer.from(text, 'utf8').toString('utf8'));
    });
  }

  /** What the user saw before leaving, billed by our own token count (the provider's usage never came). */
  private async saveAborted(turn: Turn, text: string, deployment: Deployment): Promise<void> {
    const promptTokens = turn.plan.messages.reduce((n, m) => n + countTokens(m.content), 0);
    await this.save(
      turn,
      text,
      { text, deployment, usage: { promptTokens, completionTokens: countTokens(text) }, residency: this.completions.receipt(deployment, turn.plan.policy) },
      'aborted',
    );
  }
}
