import { Inject, Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { exportJWK, generateKeyPair, importJWK, SignJWT, type CryptoKey, type JWK } from 'jose';
import { randomUUID } from 'node:crypto';
import type { Jwks } from '@ally/contracts';
import { IDENTITY_CONFIG, type IdentityConfig } from '../config.js';
import { SigningKeyEntity } from './signing-key.entity.js';

const ALG = 'EdDSA';
const DAY = 24 * 3600 * 1000;

export interface AccessClaims {
  sub: string;
  sid?: string;
  roles: string[];
}

/**
 * Access tokens are signed with the newest Ed25519 key; older keys stay
 * published until every token they signed has expired, so rotation never
 * logs anyone out. Replicas share the keys through the database.
 */
@Injectable()
export class SigningKeysService implements OnModuleInit, OnModuleDestroy {
  private current?: { kid: string; key: CryptoKey | Uint8Array };
  private published: JWK[] = [];
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly ds: DataSource,
    @Inject(IDENTITY_CONFIG) private readonly config: IdentityConfig,
  ) {}

  async onModuleInit() {
    await this.rotateIfDue();
    this.timer = setInterval(() => void this.rotateIfDue().catch(() => undefined), 60_000);
    this.timer.unref();
  }

  onModuleDestroy() {
    if (this.timer) clearInterval(this.timer);
  }

  jwks(): Jwks {
    return { keys: this.published as Record<string, unknown>[] };
  }

  async sign(claims: AccessClaims): Promise<string> {
    if (!this.current) await this.rotateIfDue();
    const { kid, key } = this.current!;
    return new SignJWT({ roles: claims.roles, ...(claims.sid ? { sid: claims.sid } : {}) })
      .setProtectedHeader({ alg: ALG, kid, typ: 'at+jwt' })
      .setSubject(claims.sub)
      .setIssuer(this.config.JWT_ISSUER)
      .setAudience(this.config.JWT_AUDIENCE)
      .setIssuedAt()
      .setJti(randomUUID())
      .setExpirationTime(`${this.config.ACCESS_TOKEN_TTL_SECONDS}s`)
      .sign(key);
  }

  /** Creates a key when the newest is older than the rotation period; retires the old one. */
  rotateIfDue(): Promise<void> {
    return this.rotate(false);
  }

  /** `force`: rotate now (the `rotate-signing-key` command, e.g. after a suspected compromise). */
  async rotate(force: boolean): Promise<void> {
    const rotationMs = this.config.SIGNING_KEY_ROTATION_DAYS * DAY;
    await this.ds.transaction(async (em) => {
      await em.query(`SELECT pg_advisory_xact_lock(hashtext('identity-signing-key'))`);
      const repo = em.getRepository(SigningKeyEntity);
      const newest = await repo.findOne({ where: {}, order: { createdAt: 'DESC' } });
      if (!force && newest && Date.now() - newest.createdAt.getTime() < rotationMs) return;
      const { publicKey, privateKey } = await generateKeyPair(ALG, { crv: 'Ed25519', extractable: true });
      const kid = randomUUID();
      const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: ALG, use: 'sig' };
      const privateJwk = { ...(await exportJWK(privateKey)), kid, alg: ALG };
      if (newest) await repo.update({ kid: newest.kid }, { retiredAt: new Date() });
      await repo.insert({ kid, alg: ALG, publicJwk, privateJwk, retiredAt: null });
    });
    await this.load();
  }

  private async load(): Promise<void> {
    // Keys retired longer ago than a token lives can no longer verify anything.
    const keepMs = (this.config.ACCESS_TOKEN_TTL_SECONDS + 300) * 1000;
    const rows: SigningKeyEntity[] = await this.ds.getRepository(SigningKeyEntity).find({ order: { createdAt: 'DESC' } });
    const live = rows.filter((r) => !r.retiredAt || Date.now() - r.retiredAt.getTime() < keepMs);
    const newest = rows[0];
    this.current = { kid: newest.kid, key: await importJWK(newest.privateJwk as JWK, ALG) };
    this.published = live.map((r) => r.publicJwk as JWK);
  }
}
