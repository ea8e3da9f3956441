import { Inject, Injectable } from '@nestjs/common';
import { BillingRpc, ProblemError, type QuotaAnswer } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { ExpiringMap } from '@ally/platform';
import { CHAT_CONFIG, type ChatConfig } from '../config.js';
import { promptBytes, promptTokens } from '../completions/token-count.js';
import type { PromptMessage } from '../content-filter/content-filter.service.js';

const QUOTA_EXHAUSTED = 'https://ally.eu/problems/quota-exhausted';

/**
 * Asked before every provider call. With QUOTA_PROVIDER=billing it asks
 * billing (answers cached briefly); with `none` (until billing runs) every
 * request is allowed. The call path is the same either way.
 *
 * Billing's answer says how many tokens are left; a prompt that alone needs
 * more is refused, and the tokens of the answers this replica records for the
 * same member while the answer is cached come off it. A workspace still
 * overruns its quota by what its other members and replicas spend within one
 * cache period (QUOTA_CACHE_MS), no longer by a cache period of long prompts.
 */
@Injectable()
export class QuotaGate {
  /** Most answers kept at once; past it the oldest go first (they expire soonest). */
  static readonly MAX_CACHED = 10_000;

  private readonly cache: ExpiringMap<string, QuotaAnswer>;

  constructor(
    private readonly rpc: RpcClient,
    @Inject(CHAT_CONFIG) private readonly config: ChatConfig,
  ) {
    this.cache = new ExpiringMap(config.QUOTA_CACHE_MS, QuotaGate.MAX_CACHED);
  }

  /** `prompt`: what will be sent, when known (its tokens must fit what is left). */
  async assertAllowed(workspace: string, userId: string, prompt: PromptMessage[] = []): Promise<void> {
    const answer = await this.check(workspace, userId);
    if (!answer.allowed) throw new ProblemError(402, answer.reason ?? 'The token quota of this workspace is used up', { type: QUOTA_EXHAUSTED });
    const left = answer.remaining;
    if (left === undefined) return;
    if (left <= 0) throw new ProblemError(402, "This month's tokens are used up (the workspace's quota or a spend cap)", { type: QUOTA_EXHAUSTED });
    // Counting is needed only for a prompt whose bytes exceed what is left (rare).
    if (promptBytes(prompt) <= left) return;
    const needed = promptTokens(prompt);
    if (needed > left) {
      throw new ProblemError(402, `This message with its history needs about ${needed} tokens, more than the ${left} left this month (the workspace's quota or a spend cap)`, { type: QUOTA_EXHAUSTED });
    }
  }

  /** Tokens an answer used, taken off the cached answer until billing's next one counts them. */
  spent(workspace: string, userId: string, tokens: number): void {
    const answer = this.cache.get(`${workspace}:${userId}`);
    if (answer?.remaining !== undefined) answer.remaining -= tokens;
  }

  private async check(workspace: string, userId: string): Promise<QuotaAnswer> {
    if (this.config.QUOTA_PROVIDER === 'none') return { allowed: true };
    const key = `${workspace}:${userId}`;
    const cached = this.cache.get(key);
    if (cached) return cached;
    // A copy of its own: `spent` counts this replica's answers off it.
    const answer = { ...(await this.rpc.call(BillingRpc.quotaCheck, { workspace, userId }, { timeoutMs: 2_000 })) };
    this.cache.set(key, answer);
    return answer;
  }
}
