import { Inject, Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { DataSource, IsNull, Not } from 'typeorm';
import { exportJWK, generateKeyPair, importJWK, SignJWT, type CryptoKey, type JWK } from 'jose';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Jwks } from '@ally/contracts';
import { LOGGER, open, seal, StartupError } from '@ally/platform';
import { identityKek } from '../common/identity-kek.js';
import { IDENTITY_CONFIG, type IdentityConfig } from '../config.js';
import { SigningKeyEntity } from './signing-key.entity.js';
import { lockNamed } from '@ally/persistence';

const ALG = 'EdDSA';
/** Where a change of the signing keys is NOTIFYed (identity's database only). */
export const SIGNING_KEYS_CHANNEL = 'ally_identity_signing_keys';
const DAY = 24 * 3600 * 1000;

export interface AccessClaims {
  sub: string;
  sid?: string;
  roles: string[];
}

/**
 * Access tokens are signed with the newest Ed25519 key published for at
 * least SIGNING_KEY_PUBLISH_AHEAD_SECONDS, so every replica and gateway knows
 * a key before a token needs it; older keys stay published until every token
 * they signed has expired, so rotation never logs anyone out. Replicas share the keys through the database, where the
 * private half is sealed under IDENTITY_KEK: a copy of the database alone
 * cannot mint tokens.
 */
@Injectable()
export class SigningKeysService implements OnModuleInit, OnModuleDestroy {
  /** The published keys that may sign, newest first. */
  private signers: { kid: string; key: CryptoKey | Uint8Array; createdAt: number }[] = [];
  private published: JWK[] = [];
  private timer?: NodeJS.Timeout;
  private readonly kek: Buffer;
  private loading: Promise<void> = Promise.resolve();

  constructor(
    private readonly ds: DataSource,
    @Inject(IDENTITY_CONFIG) private readonly config: IdentityConfig,
    @Inject(LOGGER) logger: Logger,
  ) {
    this.kek = identityKek(config, logger, 'signing keys are encrypted');
  }

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
    if (!this.signers.length) await this.rotateIfDue();
    const { kid, key } = this.signer();
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

  /**
   * The newest key published long enough, or else the one published longest (two rotations within the period:
   * the key before, which more replicas and gateways know than the new one; the first key, or the only one left
   * after a withdrawal).
   */
  private signer() {
    const ahead = this.config.SIGNING_KEY_PUBLISH_AHEAD_SECONDS * 1000;
    if (ahead === 0) return this.signers[0];
    return this.signers.find((s) => s.createdAt <= Date.now() - ahead) ?? this.signers.at(-1)!;
  }

  /** Creates a key when the newest is older than the rotation period; retires the old one. */
  rotateIfDue(): Promise<void> {
    return this.rotate(false);
  }

  /**
   * `force`: rotate now (the `rotate-signing-key` command). `withdraw`: after
   * a suspected compromise, every older key stops being published at once, so
   * no token it signed (or forged with it) verifies once the gateways have
   * refreshed their keys; clients refresh their access tokens. Under the same
   * lock, first seals any key still in the clear (from before sealing, or
   * from a replica of the previous release during a rollout).
   */
  async rotate(force: boolean, withdraw = false): Promise<void> {
    const rotationMs = this.config.SIGNING_KEY_ROTATION_DAYS * DAY;
    await this.ds.transaction(async (em) => {
      await lockNamed(em, 'identity-signing-key');
      const repo = em.getRepository(SigningKeyEntity);
      for (const row of await repo.find({ where: { privateJwk: Not(IsNull()) } })) {
        await repo.update({ kid: row.kid }, { privateJwkSealed: this.seal(row.kid, row.privateJwk!), privateJwk: null });
      }
      const newest = await repo.findOne({ where: {}, order: { createdAt: 'DESC' } });
      if (!force && newest && Date.now() - newest.createdAt.getTime() < rotationMs) return;
      const { publicKey, privateKey } = await generateKeyPair(ALG, { crv: 'Ed25519', extractable: true });
      const kid = randomUUID();
      const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: ALG, use: 'sig' };
      const privateJwk = { ...(await exportJWK(privateKey)), kid, alg: ALG };
      // Withdrawn keys are retired as of the epoch: longer ago than any token lives, so \`load\` publishes them no more.
      if (withdraw) await repo.update({ kid: Not(IsNull()) }, { retiredAt: new Date(0) });
      else if (newest) await repo.update({ kid: newest.kid }, { retiredAt: new Date() });
      await repo.insert({ kid, alg: ALG, publicJwk, privateJwkSealed: this.seal(kid, privateJwk), privateJwk: null, retiredAt: null });
      // At commit every replica hears of it (KeyChangeBroadcast) and loads the keys, rather than at its next minute.
      await em.query(`SELECT pg_notify($1, $2)`, [SIGNING_KEYS_CHANNEL, kid]);
    });
    await this.load();
  }

  private seal(kid: string, jwk: Record<string, unknown>): Buffer {
    return seal(this.kek, Buffer.from(JSON.stringify(jwk)), `signing-key:${kid}`);
  }

  private unseal(row: SigningKeyEntity): JWK {
    // Written in the clear by the previous release during a rollout: sealed at the next pass.
    if (!row.privateJwkSealed && row.privateJwk) return row.privateJwk as JWK;
    try {
      return JSON.parse(open(this.kek, row.privateJwkSealed!, `signing-key:${row.kid}`).toString('utf8')) as JWK;
    } catch {
      throw new StartupError(
        `IDENTITY_KEK does not open signing key ${row.kid}: start identity with the key it was sealed with ` +
          `(if that key is lost, delete the rows of identity.signing_keys and restart: access tokens then end early and clients refresh them)`,
      );
    }
  }

  /**
   * Reads the keys anew (also when another replica or the `rotate-signing-key` command changed them), one load
   * after the other: two at once (a rotation and a change heard) could end in the older key set.
   */
  load(): Promise<void> {
    const next = this.loading.catch(() => undefined).then(() => this.loadNow());
    this.loading = next;
    return next;
  }

  private async loadNow(): Promise<void> {
    // Keys retired longer ago than a token lives can no longer verify anything.
    const keepMs = (this.config.ACCESS_TOKEN_TTL_SECONDS + 300) * 1000;
    const rows: SigningKeyEntity[] = await this.ds.getRepository(SigningKeyEntity).find({ order: { createdAt: 'DESC' } });
    const live = rows.filter((r) => !r.retiredAt || Date.now() - r.retiredAt.getTime() < keepMs);
    // A key retired for longer than it may still sign (the ahead time) signs no more; a withdrawn one is not live.
    const signers = live.filter((r) => r === rows[0] || !r.retiredAt || Date.now() - r.retiredAt.getTime() < (this.config.SIGNING_KEY_PUBLISH_AHEAD_SECONDS + 60) * 1000);
    this.signers = await Promise.all(signers.map(async (r) => ({ kid: r.kid, key: await importJWK(this.unseal(r), ALG), createdAt: r.createdAt.getTime() })));
    this.published = live.map((r) => r.publicJwk as JWK);
  }
}
