import { Inject, Injectable, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { SIGNING_KEYS_CHANGED_SUBJECT, withPrefix } from '@ally/contracts';
import { broadcast } from '@ally/messaging';
import { PgListener } from '@ally/persistence';
import { LOGGER, NATS } from '@ally/platform';
import { IDENTITY_CONFIG, type IdentityConfig } from '../config.js';
import { SIGNING_KEYS_CHANNEL, SigningKeysService } from './signing-keys.service.js';

/**
 * A rotation or withdrawal (by any replica, or the `rotate-signing-key`
 * command) is NOTIFYed at commit: every replica loads the keys at once, so none
 * goes on signing with a withdrawn key or answers the JWKS without the new one,
 * and then tells the gateways to fetch the JWKS anew. A replica that misses it
 * (its connection away) still reloads within a minute.
 */
@Injectable()
export class KeyChangeBroadcast implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly listener: PgListener;

  constructor(
    private readonly keys: SigningKeysService,
    @Inject(NATS) private readonly nats: NatsConnection,
    @Inject(IDENTITY_CONFIG) private readonly config: IdentityConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    this.listener = new PgListener({
      databaseUrl: config.DATABASE_URL,
      channel: SIGNING_KEYS_CHANNEL,
      logger,
      onNotify: () => void this.reload(),
      onRelisten: () => void this.reload(),
      lostMessage: 'signing-key listener lost its connection; this replica reads changed keys within a minute until it is back',
    });
  }

  /** A running replica only (a one-off command builds the modules without this hook). */
  async onApplicationBootstrap(): Promise<void> {
    await this.listener.start();
  }

  async onModuleDestroy(): Promise<void> {
    await this.listener.stop();
  }

  private async reload(): Promise<void> {
    try {
      await this.keys.load();
      broadcast(this.nats, withPrefix(this.config.NATS_SUBJECT_PREFIX, SIGNING_KEYS_CHANGED_SUBJECT), {});
    } catch (err) {
      this.logger.warn({ err: String(err) }, 'reloading the signing keys failed; the next minute tries again');
    }
  }
}
