import { Inject, Injectable, type BeforeApplicationShutdown } from '@nestjs/common';
import type { Logger } from 'pino';
import { InFlight, LOGGER } from '@ally/platform';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config.js';

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
  private readonly stops = new InFlight<() => void>();

  constructor(
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /** `stop` ends the answer early; call the returned release when it ended. */
  track(stop: () => void): () => void {
    return this.stops.add(stop);
  }

  beforeApplicationShutdown(): Promise<void> {
    return this.stops.drain({
      waitMs: this.config.SHUTDOWN_GRACE_MS - TELL_MS - 500,
      settleMs: TELL_MS,
      stop: (stop) => stop(),
      logger: this.logger,
      what: 'answers being relayed',
    });
  }
}
