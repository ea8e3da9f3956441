import type { OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';

/**
 * Runs a background pass one at a time: on a timer, and whenever `wake()` is
 * called (a wake during a pass schedules exactly one more). `stop()` waits for
 * the pass in flight. Outbox relays, mail and meter workers and sagas share it.
 */
export class Pacer {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private again = false;
  private stopped = true;
  private settling?: NodeJS.Timeout;

  /**
   * `settleMs`: how long a wake waits before its pass, so that the wakes of a
   * busy moment share one pass instead of starting one each.
   */
  constructor(
    private readonly pass: () => Promise<unknown>,
    private readonly intervalMs: number,
    private readonly onError: (err: unknown) => void,
    private readonly settleMs = 0,
  ) {}

  start(): void {
    this.stopped = false;
    this.timer = setInterval(() => this.wake(), this.intervalMs);
    this.wake();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.settling) clearTimeout(this.settling);
    this.settling = undefined;
    await this.running;
  }

  wake(): void {
    if (this.stopped || this.settling) return;
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.settleMs > 0) {
      this.settling = setTimeout(() => {
        this.settling = undefined;
        this.run();
      }, this.settleMs);
      return;
    }
    this.run();
  }

  private run(): void {
    if (this.stopped) return;
    this.running = this.pass()
      .then(() => undefined, this.onError)
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.wake();
        }
      });
  }
}

/**
 * A Nest provider whose `pass` a Pacer runs: started with the application
 * (unless `runsPasses` says another replica does), stopped with it after the
 * pass in flight, woken when new work arrives. `shuttingDown` tells a long
 * pass to stop between batches.
 */
export abstract class PacedWorker implements OnApplicationBootstrap, OnApplicationShutdown {
  protected shuttingDown = false;
  private readonly pacer: Pacer;

  constructor(intervalMs: number, onError: (err: unknown) => void) {
    this.pacer = new Pacer(() => this.pass(), intervalMs, onError);
  }

  protected abstract pass(): Promise<unknown>;

  protected get runsPasses(): boolean {
    return true;
  }

  onApplicationBootstrap(): void {
    if (this.runsPasses) this.pacer.start();
  }

  async onApplicationShutdown(): Promise<void> {
    this.shuttingDown = true;
    await this.pacer.stop();
  }

  /** A no-op while the pacer does not run. */
  wake(): void {
    this.pacer.wake();
  }
}
