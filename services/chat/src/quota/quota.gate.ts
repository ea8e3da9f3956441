import { Inject, Injectable } from '@nestjs/common';
import { BillingRpc, ProblemError, type QuotaAnswer } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { ExpiringMap } from '@ally/platform';
import { CHAT_CONFIG, type ChatConfig } from '../config.js';
import { promptBytes, promptTokens } from '../completions/token-count.js';
import type { PromptMessage } from '../content-filter/content-filter.service.js';

const QUOTA_EXHAUSTED = 'https://ally.eu/problems/quota-exhausted';

/** What a prompt let through took off a cached answer (`answer`), until its answer's tokens or a release settle it. */
export interface QuotaReservation {
  key: string;
  answer?: QuotaAnswer;
  tokens: number;
  settled: boolean;
}
/** Prompts up to this size are estimated at BYTES_PER_TOKEN (text runs about 4 bytes a token); longer ones are counted. */
const COUNT_ABOVE_BYTES = 4_096;
const BYTES_PER_TOKEN = 4;

/**
 * Asked before every provider call. With QUOTA_PROVIDER=billing it asks
 * billing (answers cached briefly); with `none` (until billing runs) every
 * request is allowed. The call path is the same either way.
 *
 * Billing's answer says how many tokens are left; a prompt that alone needs
 * more is refused. Each prompt let through reserves its tokens off the cached
 * answer at once (requests sent together share one answer), and its answer's
 * tokens replace the reservation when recorded: parallel long prompts are
 * refused once they would not all fit. A workspace still overruns its quota by
 * what its other members and replicas spend within one cache period
 * (QUOTA_CACHE_MS), and by the answers of prompts let through together.
 */
@Injectable()
export class QuotaGate {
  /** Most answers kept at once; past it the oldest go first (they expire soonest). */
  static readonly MAX_CACHED = 10_000;

  private readonly cache: ExpiringMap<string, QuotaAnswer>;
  /** Billing asked once for requests that come together: they reserve off the same answer. */
  private readonly asking = new Map<string, Promise<QuotaAnswer>>();

  constructor(
    private readonly rpc: RpcClient,
    @Inject(CHAT_CONFIG) private readonly config: ChatConfig,
  ) {
    this.cache = new ExpiringMap(config.QUOTA_CACHE_MS, QuotaGate.MAX_CACHED);
  }

  /**
   * `prompt`: what will be sent, when known (its tokens must fit what is left). Answers the reservation made for it,
   * to hand to `spent` with the answer's tokens, or to `release` when no answer came.
   */
  async assertAllowed(workspace: string, userId: string, prompt: PromptMessage[] = []): Promise<QuotaReservation> {
    const answer = await this.check(workspace, userId);
    if (!answer.allowed) throw new ProblemError(402, answer.reason ?? 'The token quota of this workspace is used up', { type: QUOTA_EXHAUSTED });
    const left = answer.remaining;
    if (left === undefined) return { key: `${workspace}:${userId}`, tokens: 0, settled: false };
    if (left <= 0) throw new ProblemError(402, "This month's tokens are used up (the workspace's quota or a spend cap)", { type: QUOTA_EXHAUSTED });
    // Counted for a long prompt, or one whose estimate would not fit (a few bytes a token is close enough otherwise).
    const bytes = promptBytes(prompt);
    const estimate = Math.ceil(bytes / BYTES_PER_TOKEN);
    const needed = bytes <= COUNT_ABOVE_BYTES && estimate <= left ? estimate : promptTokens(prompt);
    if (needed > left) {
      throw new ProblemError(402, `This message with its history needs about ${needed} tokens, more than the ${left} left this month (the workspace's quota or a spend cap)`, { type: QUOTA_EXHAUSTED });
    }
    answer.remaining = left - needed;
    return { key: `${workspace}:${userId}`, answer, tokens: needed, settled: false };
  }

  /**
   * Tokens an answer used, off the cached answer until billing's next one counts them: in place of what its prompt
   * reserved when that answer is still the one cached (a newer one from billing never had the reservation).
   */
  spent(reservation: QuotaReservation, tokens: number): void {
    this.release(reservation);
    const answer = this.cache.get(reservation.key);
    if (answer?.remaining !== undefined) answer.remaining -= tokens;
  }

  /** What the prompt reserved is left again (once; no answer came, or `spent` counts it), if that answer is still cached. */
  release(reservation: QuotaReservation): void {
    if (reservation.settled) return;
    reservation.settled = true;
    const answer = this.cache.get(reservation.key);
    if (answer === reservation.answer && answer?.remaining !== undefined) answer.remaining += reservation.tokens;
  }

  private async check(workspace: string, userId: string): Promise<QuotaAnswer> {
    if (this.config.QUOTA_PROVIDER === 'none') return { allowed: true };
    const key = `${workspace}:${userId}`;
    const cached = this.cache.get(key);
    if (cached) return cached;
    let asked = this.asking.get(key);
    if (!asked) {
      asked = this.rpc
        .call(BillingRpc.quotaCheck, { workspace, userId }, { timeoutMs: 2_000 })
        .then((reply) => {
          // A copy of its own: reservations and `spent` count this replica's requests off it.
          const answer = { ...reply };
          this.cache.set(key, answer);
          return answer;
        })
        .finally(() => this.asking.delete(key));
      this.asking.set(key, asked);
    }
    return asked;
  }
}
