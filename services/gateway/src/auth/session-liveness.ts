import { Inject, Injectable, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { IdentityRpc, ProblemError, SESSIONS_ENDED_SUBJECT, withPrefix, type SessionsEnded } from '@ally/contracts';
import { listenToBroadcasts, RpcClient } from '@ally/messaging';
import { ExpiringMap, LOGGER, NATS } from '@ally/platform';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config.js';

/** Sessions remembered at once (in each map); past it the oldest answers go first (they expire soonest). */
const MAX_ENTRIES = 50_000;
const ASK_TIMEOUT_MS = 2_000;
/** After identity failed to answer, how long tokens are trusted on their signature before it is asked again (at most the period). */
const AWAY_RETRY_MS = 5_000;
/** How long an ended session is remembered when the token's expiry is not known (longer than any access token lives). */
const ENDED_FALLBACK_MS = 3600_000;

/**
 * Whether the session an access token names still runs. A signature alone
 * would let a token outlive its logout, password reset or reused refresh
 * token by up to its lifetime (15 minutes); identity is asked instead, and its
 * answer kept `SESSION_CHECK_SECONDS`, so an ended session stops working within
 * that time at one question per session per period. If identity cannot be
 * reached, the token's signature decides for a session not known to have
 * ended, as before this existed: chat keeps working while identity restarts.
 * An end is final, so a session identity said had ended stays refused, without
 * asking again, until the last of its tokens seen expires. identity also tells
 * every gateway of each session that ends, the moment it does: the period
 * bounds only what such a message missed (NATS away at that moment).
 */
@Injectable()
export class SessionLiveness implements OnApplicationBootstrap, OnModuleDestroy {
  /** Sessions identity said run, for SESSION_CHECK_SECONDS. */
  private readonly live: ExpiringMap<string, true>;
  /** Ended sessions: until when a token of theirs may still verify (its `exp`). */
  private readonly ended = new Map<string, number>();
  private readonly asking = new Map<string, Promise<boolean | undefined>>();
  /** Until then identity is not asked: it just failed to answer, and each request would wait for its timeout again. */
  private identityAwayUntil = 0;

  private stopListening?: () => void;

  constructor(
    private readonly rpc: RpcClient,
    @Inject(NATS) private readonly nats: NatsConnection,
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    this.live = new ExpiringMap(config.SESSION_CHECK_SECONDS * 1000, MAX_ENTRIES);
  }

  onApplicationBootstrap(): void {
    const subject = withPrefix(this.config.NATS_SUBJECT_PREFIX, SESSIONS_ENDED_SUBJECT);
    this.stopListening = listenToBroadcasts<SessionsEnded>(this.nats, subject, this.logger, 'sessions-ended', ({ sessionIds }) => {
      // When its tokens expire is not known here: remembered for longer than any lives.
      for (const id of sessionIds) if (typeof id === 'string') this.rememberEnded(id, Date.now() + ENDED_FALLBACK_MS);
    });
  }

  onModuleDestroy(): void {
    this.stopListening?.();
  }

  /** `tokenExpiresAt`: the token's `exp` (seconds), how long an ended session must be remembered for it. */
  async assertLive(sessionId: string, tokenExpiresAt?: number): Promise<void> {
    const endedUntil = tokenExpiresAt !== undefined ? tokenExpiresAt * 1000 : Date.now() + ENDED_FALLBACK_MS;
    if (!(await this.isLive(sessionId, endedUntil))) throw new ProblemError(401, 'This session has ended (signed out, password reset, revoked or the account erased); sign in again');
  }

  private async isLive(sessionId: string, endedUntil: number): Promise<boolean> {
    const ended = this.ended.get(sessionId);
    if (ended !== undefined) {
      if (endedUntil > ended) this.ended.set(sessionId, endedUntil);
      return false;
    }
    if (this.live.get(sessionId)) return true;
    // Unknown (identity unreachable): the signature's word, for a session not known to have ended.
    if (this.identityAwayUntil > Date.now()) return true;
    let asking = this.asking.get(sessionId);
    if (!asking) {
      asking = this.ask(sessionId).finally(() => this.asking.delete(sessionId));
      this.asking.set(sessionId, asking);
    }
    const live = await asking;
    if (live === false) this.rememberEnded(sessionId, endedUntil);
    return live ?? true;
  }

  private async ask(sessionId: string): Promise<boolean | undefined> {
    try {
      const { live } = await this.rpc.call(IdentityRpc.checkSession, { sessionId }, { timeoutMs: ASK_TIMEOUT_MS });
      if (live) this.live.set(sessionId, true);
      return live;
    } catch (err) {
      this.identityAwayUntil = Date.now() + Math.min(AWAY_RETRY_MS, this.config.SESSION_CHECK_SECONDS * 1000);
      this.logger.warn({ err: String(err) }, 'identity did not say whether a session still runs; tokens are trusted on their signature meanwhile');
      return undefined;
    }
  }

  private rememberEnded(sessionId: string, until: number): void {
    this.live.delete(sessionId);
    if (this.ended.size >= MAX_ENTRIES) {
      const now = Date.now();
      for (const [id, endedUntil] of this.ended) if (endedUntil <= now) this.ended.delete(id);
      // Still full: the oldest entry goes (tokens are issued with one lifetime, so it expires about first).
      if (this.ended.size >= MAX_ENTRIES) this.ended.delete(this.ended.keys().next().value!);
    }
    this.ended.set(sessionId, Math.max(until, this.ended.get(sessionId) ?? 0));
  }
}
