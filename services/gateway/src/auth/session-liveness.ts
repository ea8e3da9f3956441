import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';
import { IdentityRpc, ProblemError } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { LOGGER } from '@ally/platform';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config.js';

/** Sessions remembered at once; past it the oldest answers go first (they expire soonest). */
const MAX_ENTRIES = 50_000;
const ASK_TIMEOUT_MS = 2_000;

/**
 * Whether the session an access token names still runs. A signature alone
 * would let a token outlive its logout, password reset or reused refresh
 * token by up to its lifetime (15 minutes); identity is asked instead, and its
 * answer kept `SESSION_CHECK_SECONDS`, so an ended session stops working within
 * that time at one question per session per period. If identity cannot be
 * reached, the token's signature decides, as before this existed: chat keeps
 * working while identity restarts.
 */
@Injectable()
export class SessionLiveness {
  /** In insertion order, which is expiry order (the period is fixed). */
  private readonly answers = new Map<string, { live: boolean; until: number }>();
  private readonly asking = new Map<string, Promise<boolean | undefined>>();

  constructor(
    private readonly rpc: RpcClient,
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async assertLive(sessionId: string): Promise<void> {
    if (!(await this.isLive(sessionId))) throw new ProblemError(401, 'This session has ended (signed out, password reset or revoked); sign in again');
  }

  private async isLive(sessionId: string): Promise<boolean> {
    const known = this.answers.get(sessionId);
    if (known && known.until > Date.now()) return known.live;
    let asking = this.asking.get(sessionId);
    if (!asking) {
      asking = this.ask(sessionId).finally(() => this.asking.delete(sessionId));
      this.asking.set(sessionId, asking);
    }
    // Unknown (identity unreachable): the last answer if there was one, else the signature's word.
    return (await asking) ?? known?.live ?? true;
  }

  private async ask(sessionId: string): Promise<boolean | undefined> {
    try {
      const { live } = await this.rpc.call(IdentityRpc.checkSession, { sessionId }, { timeoutMs: ASK_TIMEOUT_MS });
      this.remember(sessionId, live);
      return live;
    } catch (err) {
      this.logger.warn({ err: String(err) }, 'identity did not say whether a session still runs; the token is trusted on its signature meanwhile');
      return undefined;
    }
  }

  private remember(sessionId: string, live: boolean): void {
    const now = Date.now();
    for (const [id, answer] of this.answers) {
      if (answer.until > now && this.answers.size < MAX_ENTRIES) break;
      this.answers.delete(id);
    }
    this.answers.delete(sessionId);
    this.answers.set(sessionId, { live, until: now + this.config.SESSION_CHECK_SECONDS * 1000 });
  }
}
