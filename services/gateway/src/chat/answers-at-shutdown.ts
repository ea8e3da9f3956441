import { Inject, Injectable, type BeforeApplicationShutdown } from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { LOGGER } from '@ally/platform';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config.js';

/** What a client hears of an answer stopped with the replica. */
export const RESTARTING = 'The answer was stopped because the service restarted; please send the message again';

/** Time left, once answers are stopped at shutdown, for chat to hear it and the clients to be told. */
const TELL_MS = 1_500;

/**
 * The answers this gateway replica relays (streamed or not), so that a
 * replica told to stop (a rollout, a scale-down) lets them finish within
 * SHUTDOWN_GRACE_MS and stops the rest the way a client leaving does: chat
 * is told (the provider call is aborted, what was written kept and billed)
 * and the client hears an error, instead of the connection being cut when the
 * process exits while chat goes on generating and billing an answer nobody gets.
 */
@Injectable()
export class AnswersAtShutdown implements BeforeApplicationShutdown {
  private readonly stops = new Set<() => void>();
  private idle?: () => void;

  constructor(
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /** `stop` ends the answer early; call the returned release when it ended. */
  track(stop: () => void): () => void {
    this.stops.add(stop);
    return () => {
      this.stops.delete(stop);
      if (this.stops.size === 0) this.idle?.();
    };
  }

  async beforeApplicationShutdown(): Promise<void> {
    if (this.stops.size === 0) return;
    this.logger.info({ answers: this.stops.size }, 'waiting for the answers being relayed before stopping');
    const idle = new Promise<void>((resolve) => (this.idle = resolve));
    await Promise.race([idle, sleep(Math.max(0, this.config.SHUTDOWN_GRACE_MS - TELL_MS - 500))]);
    if (this.stops.size === 0) return;
    this.logger.warn({ answers: this.stops.size }, 'stopping the answers still being relayed: the replica is shutting down');
    for (const stop of [...this.stops]) stop();
    await Promise.race([idle, sleep(TELL_MS)]);
  }
}
