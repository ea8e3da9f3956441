import { Inject, Injectable, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { SESSIONS_ENDED_SUBJECT, withPrefix, type SessionsEnded } from '@ally/contracts';
import { broadcast } from '@ally/messaging';
import { PgListener } from '@ally/persistence';
import { LOGGER, NATS } from '@ally/platform';
import { IDENTITY_CONFIG, type IdentityConfig } from '../config.js';
import { SESSION_ENDED_CHANNEL } from '../migrations/1766200000000-session-end-notify.js';

/** Ids per message: a mass sign-out (an erasure, a password reset) stays far below NATS's 1 MB. */
const IDS_PER_MESSAGE = 1_000;

/**
 * Tells every gateway of each session that ends, whatever ended it (a logout,
 * a password reset, a reused refresh token, a revoked role from the CLI, an
 * erasure), once its transaction committed: Postgres NOTIFYs the ids, every
 * identity replica passes them on (a repeat is harmless). What is missed while
 * NATS or this connection is away the gateways learn at their next check.
 */
@Injectable()
export class SessionEndBroadcast implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly listener: PgListener;
  private ended: string[] = [];

  constructor(
    @Inject(NATS) private readonly nats: NatsConnection,
    @Inject(IDENTITY_CONFIG) private readonly config: IdentityConfig,
    @Inject(LOGGER) logger: Logger,
  ) {
    this.listener = new PgListener({
      databaseUrl: config.DATABASE_URL,
      channel: SESSION_ENDED_CHANNEL,
      logger,
      onNotify: (sessionId) => this.collect(sessionId),
      lostMessage: 'session-end listener lost its connection; gateways notice ended sessions at their next check until it is back',
    });
  }

  /** A running replica only (a one-off command builds the modules without this hook). */
  async onApplicationBootstrap(): Promise<void> {
    await this.listener.start();
  }

  async onModuleDestroy(): Promise<void> {
    await this.listener.stop();
  }

  /** One message for the ids of one event-loop turn (a transaction's NOTIFYs arrive together). */
  private collect(sessionId: string): void {
    if (this.ended.push(sessionId) > 1) return;
    setImmediate(() => {
      const ids = this.ended;
      this.ended = [];
      const subject = withPrefix(this.config.NATS_SUBJECT_PREFIX, SESSIONS_ENDED_SUBJECT);
      for (let i = 0; i < ids.length; i += IDS_PER_MESSAGE) {
        const message: SessionsEnded = { sessionIds: ids.slice(i, i + IDS_PER_MESSAGE) };
        broadcast(this.nats, subject, message);
      }
    });
  }
}
