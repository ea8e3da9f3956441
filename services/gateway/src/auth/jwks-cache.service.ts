import { Inject, Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import { createLocalJWKSet, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import type { Logger } from 'pino';
import { IdentityRpc, SIGNING_KEYS_CHANGED_SUBJECT, withPrefix } from '@ally/contracts';
import { listenToBroadcasts, RpcClient } from '@ally/messaging';
import { LOGGER, NATS } from '@ally/platform';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config.js';

const REFETCH_MIN_INTERVAL_MS = 1_000;
/**
 * After identity's replicas say their keys changed: quiet this long after the last of them, so the fetch
 * reaches a replica that has loaded the change whichever one answers.
 */
const CHANGED_SETTLE_MS = 300;

/**
 * identity's public keys, held locally so verifying an access token costs no
 * hop. Fetched once, again when a token names a key we do not know (after a
 * rotation), at most once a second: such a request waits for the next allowed
 * fetch, so forged key ids cannot flood identity; and every
 * JWKS_REFRESH_SECONDS, so a key identity withdrew (`rotate-signing-key
 * --withdraw-old` after a suspected leak) stops verifying tokens here too; and
 * at once when identity's replicas broadcast that their keys changed.
 */
@Injectable()
export class JwksCache implements OnModuleInit, OnModuleDestroy {
  private jwks?: JSONWebKeySet;
  private keySet?: JWTVerifyGetKey;
  private lastFetch = 0;
  private inflight?: Promise<void>;
  private generation = 0;
  private timer?: NodeJS.Timeout;
  private changed?: NodeJS.Timeout;
  private stopListening?: () => void;

  constructor(
    private readonly rpc: RpcClient,
    @Inject(NATS) private readonly nats: NatsConnection,
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  onModuleInit(): void {
    this.timer = setInterval(() => this.refreshInBackground(), this.config.JWKS_REFRESH_SECONDS * 1000);
    this.timer.unref();
    const subject = withPrefix(this.config.NATS_SUBJECT_PREFIX, SIGNING_KEYS_CHANGED_SUBJECT);
    this.stopListening = listenToBroadcasts(this.nats, subject, this.logger, 'signing-keys-changed', () => {
      clearTimeout(this.changed);
      // After a fetch already under way (it may have read the keys from before the change), one of its own.
      this.changed = setTimeout(() => void (this.inflight ?? Promise.resolve()).catch(() => undefined).then(() => this.refreshInBackground()), CHANGED_SETTLE_MS);
    });
  }

  onModuleDestroy(): void {
    if (this.timer) clearInterval(this.timer);
    clearTimeout(this.changed);
    this.stopListening?.();
  }

  /** Until identity answers again, the keys we have stay in use. */
  private refreshInBackground(): void {
    if (this.jwks) this.refresh().catch((err) => this.logger.warn({ err: String(err) }, 'refreshing the signing keys failed; keeping the ones we have'));
  }

  /** Changes whenever the key set is replaced, so results verified against an older one can be told apart. */
  get version(): number {
    return this.generation;
  }

  async current(): Promise<JSONWebKeySet> {
    if (!this.jwks) await this.refresh();
    return this.jwks!;
  }

  /** A key resolver for jose's jwtVerify. */
  readonly getKey: JWTVerifyGetKey = async (header, token) => {
    if (!this.keySet) await this.refresh();
    if (header.kid && !this.jwks!.keys.some((k) => k.kid === header.kid)) {
      const wait = this.lastFetch + REFETCH_MIN_INTERVAL_MS - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      if (!this.jwks!.keys.some((k) => k.kid === header.kid)) await this.refresh();
    }
    return this.keySet!(header, token);
  };

  /** Concurrent callers share one request. */
  private async refresh(): Promise<void> {
    this.inflight ??= (async () => {
      try {
        const jwks = (await this.rpc.call(IdentityRpc.jwks, {}, { timeoutMs: 3_000 })) as JSONWebKeySet;
        this.lastFetch = Date.now();
        // The same keys as before: tokens verified against them stay verified (VerifiedTokenCache).
        if (this.jwks && sameKeys(this.jwks, jwks)) return;
        this.jwks = jwks;
        this.keySet = createLocalJWKSet(jwks);
        this.generation++;
      } finally {
        this.inflight = undefined;
      }
    })();
    await this.inflight;
  }
}

const kidsOf = (jwks: JSONWebKeySet) => jwks.keys.map((k) => `${k.kid}:${k.x ?? ''}`).sort().join(',');
const sameKeys = (a: JSONWebKeySet, b: JSONWebKeySet) => kidsOf(a) === kidsOf(b);
