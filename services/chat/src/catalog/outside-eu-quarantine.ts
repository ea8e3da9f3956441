import { Inject, Injectable, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { withPrefix } from '@ally/contracts';
import { broadcast, listenToBroadcasts } from '@ally/messaging';
import { LOGGER, NATS } from '@ally/platform';
import { CHAT_CONFIG, type ChatConfig } from '../config.js';
import { RouterService } from './router.service.js';

/** Core NATS, every chat replica (no queue group): a deployment that reported a region outside the EU. */
export const QUARANTINE_SUBJECT = 'ally.chat.deployments.outside-eu';

/**
 * Keeps a deployment that said it served from outside the EU from EU-only
 * callers on every chat replica, not only on the one that heard it: each
 * replica finding out for itself sent one more prompt out of the EU per
 * replica and period. A replica that misses the message (NATS away) finds
 * out with its next prompt there, as before.
 */
@Injectable()
export class OutsideEuQuarantine implements OnApplicationBootstrap, OnModuleDestroy {
  private stopListening?: () => void;

  constructor(
    private readonly router: RouterService,
    @Inject(NATS) private readonly nats: NatsConnection,
    @Inject(CHAT_CONFIG) private readonly config: ChatConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /** This replica keeps EU-only callers from it at once, and tells the others. */
  announce(deploymentId: string): void {
    this.router.quarantineOutsideEu(deploymentId);
    broadcast(this.nats, this.subject, { deploymentId });
  }

  onApplicationBootstrap(): void {
    this.stopListening = listenToBroadcasts<{ deploymentId: unknown }>(this.nats, this.subject, this.logger, 'quarantine', ({ deploymentId }) => {
      if (typeof deploymentId === 'string') this.router.quarantineOutsideEu(deploymentId);
    });
  }

  onModuleDestroy(): void {
    this.stopListening?.();
  }

  private get subject(): string {
    return withPrefix(this.config.NATS_SUBJECT_PREFIX, QUARANTINE_SUBJECT);
  }
}
