import pg from 'pg';
import type { Logger } from 'pino';

export interface PgListenerOptions {
  /** A dedicated connection: LISTEN holds it for as long as it runs. */
  databaseUrl: string;
  channel: string;
  logger: Logger;
  onNotify(payload: string): void;
  /** Listening again after the connection was lost: what was notified meanwhile was missed. */
  onRelisten?(): void;
  /** Logged when the connection is lost, saying what covers the gap. */
  lostMessage: string;
}

/**
 * LISTENs on a connection of its own. A lost connection is opened again, and
 * again with a growing pause (up to 30 s) for as long as the database stays
 * away; `onRelisten` tells the owner to catch up on what it missed.
 */
export class PgListener {
  private client?: pg.Client;
  private relisten?: NodeJS.Timeout;
  private running = false;

  constructor(private readonly opts: PgListenerOptions) {}

  /** Listening once it resolves; a database that refuses the first time rejects. */
  async start(): Promise<void> {
    this.running = true;
    await this.listen();
  }

  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.relisten);
    this.relisten = undefined;
    await this.client?.end().catch(() => undefined);
    this.client = undefined;
  }

  private async listen(): Promise<void> {
    // Keep-alives: an idle LISTEN connection a firewall or NAT dropped silently would otherwise never say so.
    const client = new pg.Client({ connectionString: this.opts.databaseUrl, keepAlive: true, keepAliveInitialDelayMillis: 30_000 });
    let lost = false;
    const onLost = (err?: unknown) => {
      if (lost) return;
      lost = true;
      if (this.client === client) this.client = undefined;
      client.end().catch(() => undefined);
      if (!this.running) return;
      this.opts.logger.warn({ err: err === undefined ? undefined : String(err) }, this.opts.lostMessage);
      this.scheduleListen(1_000);
    };
    const ignore = () => undefined;
    client.on('error', ignore);
    try {
      await client.connect();
      await client.query(`LISTEN ${pg.escapeIdentifier(this.opts.channel)}`);
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
    if (!this.running) {
      await client.end().catch(() => undefined);
      return;
    }
    client.off('error', ignore);
    client.on('error', onLost);
    client.on('end', () => onLost());
    client.on('notification', (n) => this.opts.onNotify(n.payload ?? ''));
    this.client = client;
  }

  private scheduleListen(delayMs: number): void {
    if (!this.running || this.relisten) return;
    this.relisten = setTimeout(() => {
      this.relisten = undefined;
      if (!this.running) return;
      this.listen().then(
        () => this.opts.onRelisten?.(),
        () => this.scheduleListen(Math.min(delayMs * 2, 30_000)),
      );
    }, delayMs);
    this.relisten.unref();
  }
}
