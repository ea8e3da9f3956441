import { Injectable } from '@nestjs/common';
import { createLocalJWKSet, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import { IdentityRpc } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';

const REFETCH_MIN_INTERVAL_MS = 1_000;

/**
 * identity's public keys, held locally so verifying an access token costs no
 * hop. Fetched once, and again when a token names a key we do not know (after
 * a rotation), at most once a second: such a request waits for the next
 * allowed fetch, so forged key ids cannot flood identity.
 */
@Injectable()
export class JwksCache {
  private jwks?: JSONWebKeySet;
  private keySet?: JWTVerifyGetKey;
  private lastFetch = 0;
  private inflight?: Promise<void>;
  private generation = 0;

  constructor(private readonly rpc: RpcClient) {}

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
        this.jwks = jwks;
        this.keySet = createLocalJWKSet(jwks);
        this.generation++;
        this.lastFetch = Date.now();
      } finally {
        this.inflight = undefined;
      }
    })();
    await this.inflight;
  }
}
