import { Inject, Injectable } from '@nestjs/common';
import { BillingRpc, ProblemError } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { CHAT_CONFIG, type ChatConfig } from '../config.js';

/**
 * Asked before every provider call. With QUOTA_PROVIDER=billing it asks
 * billing (answers cached briefly); with `none` (until billing runs) every
 * request is allowed. The call path is the same either way.
 */
@Injectable()
export class QuotaGate {
  /** Most answers kept at once; past it the oldest go first (they expire soonest). */
  static readonly MAX_CACHED = 10_000;

  /** In insertion order, which is expiry order (the TTL is fixed): expired entries sit at the front. */
  private readonly cache = new Map<string, { allowed: boolean; reason?: string; until: number }>();

  constructor(
    private readonly rpc: RpcClient,
    @Inject(CHAT_CONFIG) private readonly config: ChatConfig,
  ) {}

  async assertAllowed(workspace: string, userId: string): Promise<void> {
    const answer = await this.check(workspace, userId);
    if (!answer.allowed) throw new ProblemError(402, answer.reason ?? 'The token quota of this workspace is used up', { type: 'https://ally.eu/problems/quota-exhausted' });
  }

  private async check(workspace: string, userId: string): Promise<{ allowed: boolean; reason?: string }> {
    if (this.config.QUOTA_PROVIDER === 'none') return { allowed: true };
    const key = `${workspace}:${userId}`;
    const hit = this.cache.get(key);
    if (hit && hit.until > Date.now()) return hit;
    const answer = await this.rpc.call(BillingRpc.quotaCheck, { workspace, userId }, { timeoutMs: 2_000 });
    this.remember(key, { ...answer, until: Date.now() + this.config.QUOTA_CACHE_MS });
    return answer;
  }

  private remember(key: string, entry: { allowed: boolean; reason?: string; until: number }): void {
    const now = Date.now();
    for (const [k, cached] of this.cache) {
      if (cached.until > now && this.cache.size < QuotaGate.MAX_CACHED) break;
      this.cache.delete(k);
    }
    this.cache.delete(key); // re-inserted at the end, keeping the map in expiry order
    this.cache.set(key, entry);
  }
}
