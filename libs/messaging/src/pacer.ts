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
